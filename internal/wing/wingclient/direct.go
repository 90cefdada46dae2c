package wingclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
	"github.com/warrenhq/warren/internal/wing/wingrtc"
)

// Direct sessions (docs/protocols/wing.md §2.8): once a session has
// started, the client offers the wing a WebRTC DataChannel inside the
// session's encryption; after pty.migrated the wing's output and the
// client's input go over it, as the same sealed frames, each carrying its
// stream offset. When the channel dies the session goes back to the relay
// (pty.fallback) and each side sends again from what the other has; a
// later attempt moves it back.

// DirectMode says whether a session moves onto a direct channel.
type DirectMode string

// Direct modes.
const (
	DirectOff     DirectMode = "off"     // stay on the relay
	DirectAuto    DirectMode = "auto"    // try, stay on the relay if ICE fails
	DirectRequire DirectMode = "require" // fail the session if ICE fails
)

// ParseDirectMode parses off, auto or require.
func ParseDirectMode(s string) (DirectMode, error) {
	switch m := DirectMode(s); m {
	case DirectOff, DirectAuto, DirectRequire:
		return m, nil
	}
	return "", fmt.Errorf("expected off, auto or require, got %q", s)
}

// DirectOptions shape a session's direct path.
type DirectOptions struct {
	// Mode: "" or DirectOff (default) keeps the session on the relay.
	Mode DirectMode
	// RelayOnly gathers TURN relay candidates only (ICE transport policy
	// "relay"). Default false.
	RelayOnly bool
	// Networks limits host candidates to these prefixes. Default: every
	// address, loopback included.
	Networks []netip.Prefix
	// Timeout bounds one attempt, from the offer to pty.migrated.
	// Default 20s.
	Timeout time.Duration
	// TextFrames asks the wing for its output in the relay's JSON text
	// frames on the channel, as clients did before binary frames
	// (docs/protocols/wing.md §2.11): slower, kept to test that wings
	// still serve such clients. Default false: binary frames.
	TextFrames bool
	// Retry is the wait before moving back onto a direct channel after a
	// fallback or a failed attempt (doubling up to 30s after failures).
	// Default 3s.
	Retry time.Duration
}

// DirectError: the direct path was required and ICE did not connect.
type DirectError struct{ Err error }

func (e *DirectError) Error() string {
	return "direct session required (--direct require), but ICE could not connect to the wing: " + e.Err.Error()
}

func (e *DirectError) Unwrap() error { return e.Err }

// ICE fetches the STUN and TURN servers the relay hands out (GET
// /api/app/ice). A relay without the endpoint gives none.
func (c *Client) ICE(ctx context.Context) (wp.ICEConfig, error) {
	var out wp.ICEConfig
	req, err := http.NewRequestWithContext(ctx, "GET", c.base()+"/api/app/ice", nil)
	if err != nil {
		return out, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.http().Do(req)
	if err != nil {
		return out, fmt.Errorf("ICE servers from %s: %w", c.base(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return out, nil
	case http.StatusUnauthorized:
		return out, ErrUnauthorized
	default:
		return out, fmt.Errorf("ICE servers from %s: %s", c.base(), resp.Status)
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return out, fmt.Errorf("ICE servers from %s: bad answer: %w", c.base(), err)
	}
	return out, nil
}

// inputHistory is how much sent input is kept to send again after a
// fallback.
const inputHistory = 1 << 20

// exitWait bounds the wait, after pty.exited, for output still coming
// over the direct channel.
const exitWait = 10 * time.Second

type directEv struct {
	kind string // "died", "failed", "retry"
	gen  int64
	err  error
}

// clientDirect is a session's direct-path state.
type clientDirect struct {
	frames chan []byte   // DataChannel messages, for readLoop
	events chan directEv // for readLoop

	mu        sync.Mutex
	api       *webrtc.API
	gen       int64
	conn      *peer
	active    bool  // pty.migrated came for conn: input goes on the channel
	fellBack  int64 // the gen whose pty.fallback the client sent
	succeeded bool
	retry     time.Duration
	timer     *time.Timer
	inSeq     int64
	hist      []byte
	histStart int64

	// readLoop only:
	ord   wingrtc.Reorder
	used  bool     // output came over a channel
	early [][]byte // channel frames before pty.migrated
}

func (d *clientDirect) init() {
	// Few: a frame queued here and not yet written is output the wing
	// must be able to send again after a fallback.
	d.frames = make(chan []byte, 16)
	d.events = make(chan directEv, 16)
}

func (d *clientDirect) post(ev directEv) {
	select {
	case d.events <- ev:
	default:
	}
}

// peer is one attempt.
type peer struct {
	gen      int64
	answer   chan wp.Signal
	migrated chan struct{}
	dead     chan struct{}

	mu     sync.Mutex
	pc     *webrtc.PeerConnection
	sender *wingrtc.Sender
	closed bool
}

func (p *peer) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	close(p.dead)
	pc := p.pc
	p.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

func (s *Session) directOpts() DirectOptions {
	o := s.opts.Direct
	if o.Timeout <= 0 {
		o.Timeout = 20 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 3 * time.Second
	}
	return o
}

// directStarted: pty.started came; a new output stream starts, and the
// first attempt with it.
func (s *Session) directStarted(ctx context.Context) {
	s.d.ord.Reset()
	s.d.early = nil
	if s.opts.Spectate || s.opts.Direct.Mode == "" || s.opts.Direct.Mode == DirectOff {
		return
	}
	s.startAttempt(ctx)
}

func (s *Session) startAttempt(ctx context.Context) {
	s.mu.Lock()
	c, sid := s.cipher, s.id
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.d.mu.Lock()
	if s.d.conn != nil {
		s.d.mu.Unlock()
		return
	}
	s.d.gen++
	p := &peer{gen: s.d.gen, answer: make(chan wp.Signal, 1), migrated: make(chan struct{}), dead: make(chan struct{})}
	s.d.conn, s.d.active = p, false
	if s.d.api == nil {
		o := s.directOpts()
		s.d.api = wingrtc.NewAPI(wingrtc.Options{Networks: o.Networks})
	}
	api := s.d.api
	s.d.mu.Unlock()
	go func() {
		if err := s.attempt(ctx, api, p, c, sid); err != nil {
			s.d.post(directEv{kind: "failed", gen: p.gen, err: err})
		}
	}()
}

// attempt runs one offer until pty.migrated.
func (s *Session) attempt(ctx context.Context, api *webrtc.API, p *peer, c *wp.Cipher, sid string) error {
	o := s.directOpts()
	ice, err := s.c.ICE(ctx)
	if err != nil {
		return err
	}
	pc, err := api.NewPeerConnection(wingrtc.Configuration(ice.ICEServers, o.RelayOnly))
	if err != nil {
		return fmt.Errorf("WebRTC: %w", err)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pc.Close()
		return nil
	}
	p.pc = pc
	p.mu.Unlock()
	dc, err := pc.CreateDataChannel(wp.DataChannelLabel, nil)
	if err != nil {
		return fmt.Errorf("WebRTC: %w", err)
	}
	p.mu.Lock()
	p.sender = wingrtc.NewSender(dc, p.dead)
	p.mu.Unlock()
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		select {
		case s.d.frames <- m.Data:
		case <-p.dead:
		}
	})
	dc.OnClose(func() { s.d.post(directEv{kind: "died", gen: p.gen, err: errors.New("channel closed")}) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected:
			s.d.post(directEv{kind: "died", gen: p.gen, err: fmt.Errorf("ICE connection %s", st)})
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fmt.Errorf("WebRTC offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return fmt.Errorf("WebRTC offer: %w", err)
	}
	deadline := time.NewTimer(o.Timeout)
	defer deadline.Stop()
	if err := wingrtc.WaitGathered(ctx, pc, gathered, o.Timeout); err != nil {
		return err
	}
	if err := s.send(ctx, wp.DirectFrame{Type: wp.TypePTYMigrate, SessionID: sid,
		Data: wp.SealSignal(c, wp.Signal{Gen: p.gen, SDP: pc.LocalDescription().SDP, Binary: !o.TextFrames})}); err != nil {
		return err
	}
	var ans wp.Signal
	select {
	case ans = <-p.answer:
	case <-p.dead:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-deadline.C:
		return errors.New("the wing did not answer the offer (a wing without direct sessions ignores it)")
	}
	if ans.Error != "" {
		return fmt.Errorf("the wing refused: %s", ans.Error)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: ans.SDP}); err != nil {
		return fmt.Errorf("the wing's answer: %w", err)
	}
	select {
	case <-p.migrated:
		return nil
	case <-p.dead:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-deadline.C:
		return fmt.Errorf("no connection within %s (ICE checks failed: no candidate pair works)", o.Timeout)
	}
}

// directSignal handles pty.migrate (the answer), pty.migrated and
// pty.fallback from the wing; called by readLoop.
func (s *Session) directSignal(ctx context.Context, f frame, onEvent func(Event), out io.Writer, replay *[]byte) error {
	s.mu.Lock()
	c := s.cipher
	s.mu.Unlock()
	if c == nil || s.opts.Spectate {
		return nil
	}
	sig, err := wp.OpenSignal(c, f.Data)
	if err != nil {
		return nil // not ours to act on
	}
	s.d.mu.Lock()
	p := s.d.conn
	s.d.mu.Unlock()
	switch f.Type {
	case wp.TypePTYMigrate:
		if p != nil && p.gen == sig.Gen {
			select {
			case p.answer <- sig:
			default:
			}
		}
	case wp.TypePTYMigrated:
		if p == nil || p.gen != sig.Gen {
			return nil
		}
		s.d.mu.Lock()
		s.d.active, s.d.succeeded, s.d.retry = true, true, 0
		s.d.mu.Unlock()
		s.d.used = true
		if _, ok := s.d.ord.Next(); !ok {
			// Nothing live came over the relay since pty.started: the
			// channel's stream starts where the replay ended.
			s.d.ord.Start(sig.Seq)
		}
		close(p.migrated)
		onEvent(Event{Kind: "direct", SessionID: s.ID()})
		early := s.d.early
		s.d.early = nil
		for _, b := range early {
			if err := s.directOutput(out, b, replay); err != nil {
				return err
			}
		}
	case wp.TypePTYFallback:
		if s.d.fellBack < sig.Gen {
			if err := s.fallBack(ctx, sig.Gen, errors.New("the wing lost the channel"), onEvent); err != nil {
				return err
			}
		}
		s.resendInput(ctx, c, sig.Have)
	}
	return nil
}

// directEvent handles a channel dying, an attempt failing, or the time
// to try again; called by readLoop.
func (s *Session) directEvent(ctx context.Context, ev directEv, onEvent func(Event)) error {
	if ev.kind == "retry" {
		s.startAttempt(ctx)
		return nil
	}
	return s.fallBack(ctx, ev.gen, ev.err, onEvent)
}

// fallBack ends attempt gen: if it was carrying the session, the wing is
// told what output the client has (pty.fallback); a required direct
// session that never connected fails.
func (s *Session) fallBack(ctx context.Context, gen int64, why error, onEvent func(Event)) error {
	s.d.mu.Lock()
	p := s.d.conn
	if p == nil || p.gen != gen {
		s.d.mu.Unlock()
		return nil
	}
	active := s.d.active
	s.d.conn, s.d.active = nil, false
	s.d.fellBack = gen
	succeeded := s.d.succeeded
	s.d.mu.Unlock()
	p.close()
	s.mu.Lock()
	c, sid := s.cipher, s.id
	s.mu.Unlock()
	if c != nil {
		sig := wp.Signal{Gen: gen, Start: true}
		if next, ok := s.d.ord.Next(); ok {
			sig = wp.Signal{Gen: gen, Have: next}
		}
		s.send(ctx, wp.DirectFrame{Type: wp.TypePTYFallback, SessionID: sid, Data: wp.SealSignal(c, sig)})
	}
	if active {
		onEvent(Event{Kind: "fallback", SessionID: sid, Err: why})
	} else {
		if s.opts.Direct.Mode == DirectRequire && !succeeded {
			if s.opts.SessionID == "" && sid != "" {
				// Started for this Run, which ends here: nobody will use it.
				s.send(ctx, wp.SessionRef{Type: wp.TypePTYKill, SessionID: sid})
			}
			return &DirectError{Err: why}
		}
		onEvent(Event{Kind: "direct_failed", SessionID: sid, Err: why})
	}
	s.scheduleRetry(!active)
	return nil
}

func (s *Session) scheduleRetry(failed bool) {
	o := s.directOpts()
	s.d.mu.Lock()
	defer s.d.mu.Unlock()
	d := o.Retry
	if failed {
		s.d.retry = min(max(2*s.d.retry, o.Retry), 30*time.Second)
		d = s.d.retry
	}
	if s.d.timer != nil {
		s.d.timer.Stop()
	}
	s.d.timer = time.AfterFunc(d, func() { s.d.post(directEv{kind: "retry"}) })
}

// endDirect closes the channel and stops retrying.
func (s *Session) endDirect() {
	s.d.mu.Lock()
	p := s.d.conn
	s.d.conn, s.d.active = nil, false
	if s.d.timer != nil {
		s.d.timer.Stop()
		s.d.timer = nil
	}
	s.d.mu.Unlock()
	if p != nil {
		p.close()
	}
	// Retry events still queued find no attempt to replace and start a
	// new one only through directStarted's next pty.started.
	for {
		select {
		case <-s.d.events:
		default:
			return
		}
	}
}

// directOutput handles a frame from the channel; called by readLoop.
func (s *Session) directOutput(out io.Writer, b []byte, replay *[]byte) error {
	if _, ok := s.d.ord.Next(); !ok {
		// Nothing says yet where the stream stands: pty.migrated will.
		s.d.early = append(s.d.early, b)
		if len(s.d.early) > 1024 {
			return errors.New("direct channel: output before pty.migrated")
		}
		return nil
	}
	s.mu.Lock()
	c := s.cipher
	s.mu.Unlock()
	if c == nil {
		return nil
	}
	var seq int64
	var p []byte
	if len(b) > 0 && b[0] != '{' {
		// A binary frame (the offer asked for them): its first byte is
		// its kind, where a JSON text frame has '{'.
		kind, at, plain, err := c.OpenFrame(b)
		if err != nil {
			return fmt.Errorf("a frame on the direct channel does not decrypt: %w", err)
		}
		if kind != wp.FrameOutput {
			return nil
		}
		seq, p = at, plain
	} else {
		var f frame
		if json.Unmarshal(b, &f) != nil || f.Type != wp.TypePTYOutput || f.Seq == nil || f.Compressed || f.ViewerID != "" {
			return nil
		}
		plain, err := c.Open(f.Data)
		if err != nil {
			return fmt.Errorf("pty.output on the direct channel does not decrypt: %w", err)
		}
		seq, p = *f.Seq, plain
	}
	if err := s.flushReplay(out, replay); err != nil {
		return err
	}
	return s.liveOutput(out, &seq, p)
}

// liveOutput writes live output in stream order.
func (s *Session) liveOutput(out io.Writer, seq *int64, p []byte) error {
	if seq == nil {
		return s.write(out, p)
	}
	err := s.d.ord.Push(*seq, p, func(b []byte) error { return s.write(out, b) })
	if err != nil {
		return fmt.Errorf("session output: %w", err)
	}
	return nil
}

// outputComplete: every output byte before pty.exited has been written
// (only output over a channel can still be on its way).
func (s *Session) outputComplete(f frame) bool {
	if f.Seq == nil || !s.d.used {
		return true
	}
	next, ok := s.d.ord.Next()
	return !ok || next >= *f.Seq
}

// resetInputSeq: the wing numbers a (re)attached controller's input from
// 0. Called with s.mu held, in the critical section that installs the
// new pty.started's cipher: Input numbers its keys under s.mu too, so
// keys are numbered either wholly before the reset (sealed with the old
// key, which the wing cannot open any more) or wholly after it. Reset
// after the cipher is published, keys typed in between were numbered
// from 0 and the numbering then began again at 0: the wing took the
// next keys for a duplicate of them and dropped them.
func (s *Session) resetInputSeq() {
	s.d.mu.Lock()
	s.d.inSeq, s.d.hist, s.d.histStart = 0, nil, 0
	s.d.mu.Unlock()
}

// nextInput numbers keys p and notes them for a resend; called with s.mu
// held (see resetInputSeq). It returns their offset and the channel's
// sender if the session is on one.
func (s *Session) nextInput(p []byte) (int64, *wingrtc.Sender) {
	s.d.mu.Lock()
	seq := s.d.inSeq
	s.d.inSeq += int64(len(p))
	s.d.hist = append(s.d.hist, p...)
	if over := len(s.d.hist) - inputHistory; over > 0 {
		s.d.hist = s.d.hist[over:]
		s.d.histStart += int64(over)
	}
	var snd *wingrtc.Sender
	if s.d.active && s.d.conn != nil {
		s.d.conn.mu.Lock()
		snd = s.d.conn.sender
		s.d.conn.mu.Unlock()
	}
	s.d.mu.Unlock()
	return seq, snd
}

// sendInput sends keys numbered by nextInput, over the channel when the
// session is on one.
func (s *Session) sendInput(ctx context.Context, sid string, c *wp.Cipher, seq int64, snd *wingrtc.Sender, p []byte) error {
	f := wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c.Seal(p), Seq: &seq}
	if snd != nil {
		if b, err := wp.Encode(f); err == nil && snd.Send(b) == nil {
			return nil
		}
		// The channel is going: the relay carries it (the wing drops
		// what it already has).
	}
	return s.send(ctx, f)
}

// resendInput sends again, over the relay, the input after have.
func (s *Session) resendInput(ctx context.Context, c *wp.Cipher, have int64) {
	s.d.mu.Lock()
	from := max(have, s.d.histStart)
	end := s.d.histStart + int64(len(s.d.hist))
	var rest []byte
	if from < end {
		rest = append(rest, s.d.hist[from-s.d.histStart:]...)
	}
	s.d.mu.Unlock()
	sid := s.ID()
	for len(rest) > 0 {
		n := min(len(rest), 32<<10)
		seq := from
		s.send(ctx, wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c.Seal(rest[:n]), Seq: &seq})
		rest, from = rest[n:], from+int64(n)
	}
}

type relayMsg struct {
	data []byte
	err  error
}

// relayFrames reads ws into a channel until an error or done.
func relayFrames(ctx context.Context, ws *websocket.Conn, done <-chan struct{}) <-chan relayMsg {
	ch := make(chan relayMsg)
	go func() {
		for {
			_, data, err := ws.Read(ctx)
			select {
			case ch <- relayMsg{data, err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return ch
}
