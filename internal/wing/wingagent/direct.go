package wingagent

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
	"github.com/warrenhq/warren/internal/wing/wingrtc"
)

// Direct sessions (docs/protocols/wing.md §2.8). The client offers a
// WebRTC DataChannel inside the session's encryption (pty.migrate); once
// the channel opens the wing says from which output offset output goes
// over it (pty.migrated), and from then the controller's pty.output
// frames, sealed as before, travel on the channel; input may come either
// way. Output and input carry their stream offsets, so when the channel
// dies (pty.fallback, either side first) each side sends again, over the
// relay, from what the other says it has: nothing is lost or repeated.

// holdMax bounds how long output waits, after the wing saw the channel
// die, for the client to say what it has: the bytes it may lack must
// still be in the replay buffer when it asks.
const holdMax = 10 * time.Second

// resendMax bounds the output kept, while a session is on a channel, to
// send again after a fallback: the channel's send window (4 MiB), the
// peer's receive window and frames on their way, with room to spare.
const resendMax = 16 << 20

// exitLinger keeps a direct channel open after the session exited, for
// the output still on its way; the client closes it sooner.
const exitLinger = 30 * time.Second

// directState is a session's direct-path state, guarded by session.mu
// except where noted.
type directState struct {
	outSeq int64       // output bytes produced: the next output offset
	gen    int64       // the client's latest migration attempt
	conn   *directConn // the attempt in progress or open; nil: relay only
	sender *wingrtc.Sender
	hold   chan struct{} // non-nil: output waits for the client's pty.fallback
	// resending: non-nil while output lost with a channel is sent again
	// over the relay (clientFallback); live output waits behind it.
	resending chan struct{}
	noticed   int64        // the gen whose pty.fallback the wing has sent
	inNext    atomic.Int64 // input offset applied so far (inputLoop writes)
	inOrder   wingrtc.Reorder
	// keep: output is recorded in resend, from the channel's opening to
	// the client's pty.fallback; resend ends at outSeq.
	keep      bool
	resend    []byte
	resendBuf []byte // resend's backing array (tailAppend)
	dcStart   int64  // the output offset the channel's stream started at
	binary    bool   // the open channel takes binary frames (Signal.Binary)
	// frame is the buffer output is sealed into before it goes on the
	// channel; guarded by session.sendMu.
	frame []byte
}

// directChunk is the most plaintext one JSON channel frame carries: SCTP
// moves messages of tens of KiB faster than the relay path's 128 KiB.
const directChunk = 48 << 10

// directOut is where one piece of output goes when the controller is on
// a channel: taken with session.mu held, used with session.sendMu held.
type directOut struct {
	d      *directState
	sender *wingrtc.Sender // nil: the relay carries the output
	c      *wp.Cipher
	seq    int64
	binary bool
}

// out says where output from offset seq goes; called with session.mu
// held, c the controller's key.
func (d *directState) out(c *wp.Cipher, seq int64) directOut {
	return directOut{d: d, sender: d.sender, c: c, seq: seq, binary: d.binary}
}

// send seals p as channel frames and sends them; called with
// session.sendMu held. A frame lost with a dying channel is sent again
// over the relay (clientFallback).
func (o directOut) send(sid string, p []byte) {
	if o.sender == nil {
		return
	}
	seq := o.seq
	if !o.binary {
		for len(p) > 0 {
			n := min(len(p), directChunk)
			at := seq
			b, _ := wp.Encode(wp.Output{Type: wp.TypePTYOutput, SessionID: sid, Data: o.c.Seal(p[:n]), Seq: &at})
			if o.sender.Send(b) != nil {
				return
			}
			p, seq = p[n:], seq+int64(n)
		}
		return
	}
	for len(p) > 0 {
		n := min(len(p), wp.MaxFramePlain)
		o.d.frame = o.c.SealFrame(o.d.frame[:0], wp.FrameOutput, seq, p[:n])
		if o.sender.SendBinary(o.d.frame) != nil {
			return
		}
		p, seq = p[n:], seq+int64(n)
	}
}

// record keeps output to send again after a fallback; called with
// session.mu held, after outSeq moved past p.
func (d *directState) record(p []byte) {
	if !d.keep {
		return
	}
	tailAppend(&d.resend, &d.resendBuf, p)
	if over := len(d.resend) - resendMax; over > 0 {
		d.resend = d.resend[over:]
	}
}

// stopKeeping forgets the output kept to resend.
func (d *directState) stopKeeping() {
	d.keep, d.resend, d.resendBuf = false, nil, nil
}

// directConn is one migration attempt's peer connection.
type directConn struct {
	gen      int64
	binary   bool // the client's offer said Signal.Binary
	pc       *webrtc.PeerConnection
	dead     chan struct{}
	deadOnce sync.Once
}

func (d *directConn) close() {
	d.deadOnce.Do(func() {
		close(d.dead)
		go d.pc.Close()
	})
}

// inFrame is one pty.input, from the relay or the channel; reset marks
// where a new controller's input stream starts (a reattach), in order
// with the input queued before it.
type inFrame struct {
	data  string
	seq   *int64
	reset bool
}

func (a *Agent) rtcAPI() *webrtc.API {
	a.rtcOnce.Do(func() { a.rtc = wingrtc.NewAPI(wingrtc.Options{Networks: a.cfg.DirectNetworks}) })
	return a.rtc
}

func (a *Agent) setICEServers(s []wp.ICEServer) {
	a.iceMu.Lock()
	a.ice = s
	a.iceMu.Unlock()
}

func (a *Agent) iceServers() []wp.ICEServer {
	a.iceMu.Lock()
	defer a.iceMu.Unlock()
	return append(a.cfg.ICEServers[:len(a.cfg.ICEServers):len(a.cfg.ICEServers)], a.ice...)
}

func (a *Agent) trackConn(d *directConn, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if on {
		a.directs[d] = true
	} else {
		delete(a.directs, d)
	}
}

// closeDirects closes every peer connection (the wing is stopping).
func (a *Agent) closeDirects() {
	a.mu.Lock()
	all := make([]*directConn, 0, len(a.directs))
	for d := range a.directs {
		all = append(all, d)
	}
	a.directs = map[*directConn]bool{}
	a.mu.Unlock()
	for _, d := range all {
		d.deadOnce.Do(func() { close(d.dead) })
		d.pc.Close()
	}
}

// directFrame handles pty.migrate and pty.fallback from the controller.
func (s *session) directFrame(ctx context.Context, typ string, m wp.DirectFrame) {
	s.mu.Lock()
	c := s.out
	s.mu.Unlock()
	if c == nil {
		return
	}
	sig, err := wp.OpenSignal(c, m.Data)
	if err != nil {
		s.a.log.Warn("direct-session signal that does not decrypt dropped", "type", typ, "session", s.id, "err", err)
		return
	}
	switch typ {
	case wp.TypePTYMigrate:
		go s.migrate(ctx, sig, c)
	case wp.TypePTYFallback:
		go s.clientFallback(ctx, sig, c)
	}
}

func (s *session) sendSignal(ctx context.Context, typ string, c *wp.Cipher, sig wp.Signal) error {
	return s.a.send(ctx, wp.DirectFrame{Type: typ, SessionID: s.id, Data: wp.SealSignal(c, sig)})
}

// migrate answers an offer.
func (s *session) migrate(ctx context.Context, offer wp.Signal, c *wp.Cipher) {
	a := s.a
	refuse := func(msg string) {
		a.log.Info("direct session refused", "session", s.id, "gen", offer.Gen, "reason", msg)
		s.sendSignal(ctx, wp.TypePTYMigrate, c, wp.Signal{Gen: offer.Gen, Error: msg})
	}
	if a.cfg.DisableDirect {
		refuse("direct sessions are off on this wing (serve.direct)")
		return
	}
	if offer.SDP == "" {
		refuse("pty.migrate carries no offer")
		return
	}
	pc, err := a.rtcAPI().NewPeerConnection(wingrtc.Configuration(a.iceServers(), false))
	if err != nil {
		refuse("WebRTC: " + err.Error())
		return
	}
	d := &directConn{gen: offer.Gen, binary: offer.Binary, pc: pc, dead: make(chan struct{})}
	a.trackConn(d, true)
	s.mu.Lock()
	if offer.Gen <= s.d.gen || s.exited {
		s.mu.Unlock()
		a.trackConn(d, false)
		pc.Close()
		return // a stale or repeated offer
	}
	old := s.d.conn
	s.d.gen, s.d.conn = offer.Gen, d
	s.d.sender = nil
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		if dc.Label() != wp.DataChannelLabel {
			dc.Close()
			return
		}
		dc.OnOpen(func() { s.activate(ctx, d, dc, c) })
		dc.OnMessage(func(msg webrtc.DataChannelMessage) { s.directInput(msg.Data) })
		dc.OnClose(func() { s.directDied(ctx, d, "channel closed") })
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateDisconnected, webrtc.PeerConnectionStateClosed:
			s.directDied(ctx, d, "ICE "+st.String())
		}
	})
	fail := func(msg string) {
		s.mu.Lock()
		if s.d.conn == d {
			s.d.conn = nil
		}
		s.mu.Unlock()
		d.close()
		a.trackConn(d, false)
		refuse(msg)
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP}); err != nil {
		fail("bad offer: " + err.Error())
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		fail("answer: " + err.Error())
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		fail("answer: " + err.Error())
		return
	}
	if err := wingrtc.WaitGathered(ctx, pc, gathered, 15*time.Second); err != nil {
		fail(err.Error())
		return
	}
	a.log.Debug("direct session answered", "session", s.id, "gen", offer.Gen)
	s.sendSignal(ctx, wp.TypePTYMigrate, c, wp.Signal{Gen: offer.Gen, SDP: pc.LocalDescription().SDP})
}

// activate switches the controller's output to the open channel and
// tells the client where that starts.
func (s *session) activate(ctx context.Context, d *directConn, dc *webrtc.DataChannel, c *wp.Cipher) {
	s.mu.Lock()
	if s.d.conn != d || s.out != c || s.exited {
		s.mu.Unlock()
		return
	}
	s.d.sender = wingrtc.NewSender(dc, d.dead)
	s.d.binary = d.binary
	s.d.stopKeeping()
	s.d.keep = true
	seq := s.d.outSeq
	s.d.dcStart = seq
	// Output sealed before this point is on the relay ahead of
	// pty.migrated (sendMu); what follows goes on the channel.
	s.sendMu.Lock()
	s.mu.Unlock()
	defer s.sendMu.Unlock()
	s.sendSignal(ctx, wp.TypePTYMigrated, c, wp.Signal{Gen: d.gen, Seq: seq})
	s.a.log.Info("session migrated to a direct channel", "session", s.id, "gen", d.gen, "seq", seq,
		"binary_frames", d.binary, "sctp_zero_checksum", zeroChecksum(d.pc))
}

// zeroChecksum says whether the peer agreed to SCTP without CRC32c
// (RFC 9653, negotiated in the SCTP handshake): pion does; browsers may
// not.
func zeroChecksum(pc *webrtc.PeerConnection) bool {
	for _, st := range pc.GetStats() {
		if t, ok := st.(webrtc.SCTPTransportStats); ok && t.Metadata != nil {
			return t.Metadata.ZeroChecksumSendingEnabled
		}
	}
	return false
}

// directDied gives up attempt d: output goes back to the relay, held
// until the client says what it has, and the client is told what input
// the wing has.
func (s *session) directDied(ctx context.Context, d *directConn, why string) {
	s.mu.Lock()
	if s.d.conn != d {
		s.mu.Unlock()
		return
	}
	active := s.d.sender != nil
	s.d.conn, s.d.sender = nil, nil
	if active && s.d.hold == nil {
		h := make(chan struct{})
		s.d.hold = h
		time.AfterFunc(holdMax, func() { s.release(h) })
	}
	c := s.out
	// After the exit nobody needs the relay path back.
	notice := s.d.noticed < d.gen && c != nil && !s.exited
	if notice {
		s.d.noticed = d.gen
	}
	s.mu.Unlock()
	d.close()
	s.a.trackConn(d, false)
	s.a.log.Info("direct channel lost; session back on the relay", "session", s.id, "gen", d.gen, "why", why, "was_open", active)
	if notice {
		s.sendSignal(ctx, wp.TypePTYFallback, c, wp.Signal{Gen: d.gen, Have: s.d.inNext.Load()})
	}
}

// release lets held output go.
func (s *session) release(h chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.d.hold == h {
		s.d.hold = nil
		close(h)
	}
}

// waitHold blocks output while the wing waits for the client's fallback,
// or while it sends output again after one.
func (s *session) waitHold() {
	s.mu.Lock()
	h := s.d.hold
	if h == nil {
		h = s.d.resending
	}
	s.mu.Unlock()
	if h != nil {
		<-h // released by the client's pty.fallback or after holdMax; or the resend's end
	}
}

// held says whether output must wait (waitHold); called with s.mu held.
func (s *session) held() bool { return s.d.hold != nil || s.d.resending != nil }

// clientFallback: the client left the channel and has output up to
// sig.Have; it gets the rest again over the relay.
func (s *session) clientFallback(ctx context.Context, sig wp.Signal, c *wp.Cipher) {
	s.mu.Lock()
	d := s.d.conn
	s.mu.Unlock()
	if d != nil && d.gen == sig.Gen {
		s.directDied(ctx, d, "the client fell back")
	}
	s.mu.Lock()
	for s.d.resending != nil { // a resend for an earlier pty.fallback goes first
		r := s.d.resending
		s.mu.Unlock()
		<-r
		s.mu.Lock()
	}
	if sig.Gen != s.d.gen || s.out != c {
		s.mu.Unlock()
		return
	}
	if h := s.d.hold; h != nil {
		s.d.hold = nil
		close(h)
	}
	end := s.d.outSeq
	from := sig.Have
	if sig.Start {
		from = end // the channel carried nothing...
		if s.d.keep {
			from = s.d.dcStart // ...or what it carried since it opened
		}
	}
	kept := s.replay.data
	if len(s.d.resend) > len(kept) {
		kept = s.d.resend
	}
	s.d.stopKeeping()
	start := end - int64(len(kept))
	if from > end {
		s.mu.Unlock()
		s.a.log.Warn("pty.fallback claims output the wing never produced", "session", s.id, "have", from, "end", end)
		return
	}
	if from < start {
		s.a.log.Warn("output lost on the direct channel is older than what the wing kept", "session", s.id, "have", from, "oldest", start)
		from = start
	}
	rest := append([]byte(nil), kept[from-start:]...)
	// Live output waits until the resend is through (output, waitHold):
	// the relay carries the stream in order.
	gate := make(chan struct{})
	s.d.resending = gate
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.d.resending == gate {
			s.d.resending = nil
		}
		s.mu.Unlock()
		close(gate)
	}()
	to, ok := s.resendOutput(ctx, c, from, rest)
	if !ok {
		s.a.log.Info("output resend after a fallback ended: the session has another controller", "session", s.id, "gen", sig.Gen, "at", to)
		return
	}
	s.a.log.Info("session output resumed on the relay", "session", s.id, "gen", sig.Gen, "from", sig.Have, "to", end)
}

// resendOutput sends rest, the output from offset from, over the relay
// to the controller with key c, keeping to its output window like live
// output (flow.go): a resend of up to resendMax at once would overflow
// the relay's send queue for a slow viewer. It returns where it stopped,
// and false if c stopped being the controller (the new one got a
// replay).
func (s *session) resendOutput(ctx context.Context, c *wp.Cipher, from int64, rest []byte) (int64, bool) {
	for len(rest) > 0 {
		s.waitFlow(func() bool { return s.out == c && from-s.flow.acked >= s.flow.window })
		s.mu.Lock()
		if s.out != c {
			s.mu.Unlock()
			return from, false
		}
		n := min(len(rest), wp.ChunkSize)
		seq := from
		s.sendMu.Lock()
		s.mu.Unlock()
		s.a.send(ctx, wp.Output{Type: wp.TypePTYOutput, SessionID: s.id, Data: c.Seal(rest[:n]), Seq: &seq})
		s.sendMu.Unlock()
		rest, from = rest[n:], from+int64(n)
	}
	return from, true
}

// directInput is a frame from the channel: pty.input, as on the relay.
func (s *session) directInput(b []byte) {
	var m wp.Input
	if wp.Decode(b, &m) != nil || m.Type != wp.TypePTYInput || m.SessionID != s.id {
		return
	}
	s.queueInput(m.Data, m.Seq)
}

// writeInput writes decrypted input to the PTY, in input-offset order
// when the frame has one; called from inputLoop only.
func (s *session) writeInput(seq *int64, p []byte) error {
	if seq == nil {
		_, err := s.pty.Write(p)
		return err
	}
	err := s.d.inOrder.Push(*seq, p, func(b []byte) error {
		_, err := s.pty.Write(b)
		return err
	})
	next, _ := s.d.inOrder.Next()
	s.d.inNext.Store(next)
	if errors.Is(err, wingrtc.ErrTooFarAhead) || errors.Is(err, wingrtc.ErrBadOffset) {
		s.a.log.Warn("input out of order dropped", "session", s.id, "err", err)
		s.d.inOrder.Reset()
		return nil
	}
	return err
}

// endDirect closes the session's channel (a reattach: the new controller
// has another key, and another client).
func (s *session) endDirect() {
	s.mu.Lock()
	d := s.d.conn
	s.d.conn, s.d.sender = nil, nil
	s.d.gen, s.d.noticed = 0, 0 // the next client numbers its attempts from 1
	s.d.stopKeeping()
	if h := s.d.hold; h != nil {
		s.d.hold = nil
		close(h)
	}
	s.mu.Unlock()
	if d != nil {
		d.close()
		s.a.trackConn(d, false)
	}
}

// resetInput starts the input stream afresh behind what is queued: a
// reattaching client numbers its input from 0 again.
func (s *session) resetInput() {
	select {
	case s.input <- inFrame{reset: true}:
	case <-s.done:
	}
}

// lingerDirect closes the channel some time after the session exited.
func (s *session) lingerDirect() {
	s.mu.Lock()
	d := s.d.conn
	s.mu.Unlock()
	if d == nil {
		return
	}
	go func() {
		select {
		case <-d.dead:
		case <-time.After(exitLinger):
		}
		s.endDirect()
	}()
}
