package wingclient

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Errors callers branch on.
var (
	ErrUnauthorized = errors.New("the relay rejected the user token (401)")
	ErrDetached     = errors.New("detached")
)

// Client talks to one relay with one user token.
type Client struct {
	RelayURL   string       // base URL, http(s). Required.
	Token      string       // user token. Required.
	HTTPClient *http.Client // default http.DefaultClient
	// VerifyKey, when set, is asked about every wing identity key before
	// it is used (to encrypt to it, or to trust a pty.started); an error
	// stops the session or request. Default nil: keys are taken as the
	// relay presents them.
	VerifyKey func(wingID, publicKey string) error
}

func (c *Client) verifyKey(wingID, pub string) error {
	if c.VerifyKey == nil {
		return nil
	}
	return c.VerifyKey(wingID, pub)
}

func (c *Client) http() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return http.DefaultClient
}

func (c *Client) base() string { return strings.TrimRight(c.RelayURL, "/") }

// Wings lists the wings the token may reach.
func (c *Client) Wings(ctx context.Context) ([]wp.WingInfo, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", c.base()+"/api/app/wings", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("list wings at %s: %w", c.base(), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, ErrUnauthorized
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list wings at %s: %s: %s", c.base(), resp.Status, bytes.TrimSpace(body))
	}
	var out []wp.WingInfo
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("list wings at %s: bad answer: %w", c.base(), err)
	}
	return out, nil
}

func (c *Client) ptyURL(wingID string) string {
	u := c.base()
	switch {
	case strings.HasPrefix(u, "https://"):
		u = "wss://" + u[len("https://"):]
	case strings.HasPrefix(u, "http://"):
		u = "ws://" + u[len("http://"):]
	}
	return u + "/ws/pty?wing_id=" + url.QueryEscape(wingID)
}

// SessionOptions say what to start or reattach.
type SessionOptions struct {
	WingID    string // required
	SessionID string // reattach this session; "" starts a new one
	Agent     string // agent name for a new session; "" is the shell
	Command   string // warren extension: run this command line instead
	Cwd       string
	Cols      int
	Rows      int
	// Spectate watches SessionID read-only, with a key of its own; the
	// relay drops a spectator's input.
	Spectate bool
	// AuthToken is a passkey auth token from an earlier pty.started.
	AuthToken string
	// Direct moves the session onto a WebRTC DataChannel once it has
	// started (docs/protocols/wing.md §2.8). Default: off.
	Direct DirectOptions
}

// Session is one attached PTY session.
type Session struct {
	c    *Client
	opts SessionOptions
	key  *ecdh.PrivateKey

	mu       sync.Mutex
	ws       *websocket.Conn
	cipher   *wp.Cipher
	id       string
	wmu      sync.Mutex
	tail     []byte // last bytes written to out, to trim replays after a reconnect
	detached bool
	viewer   string // our viewer_id when spectating
	authTok  string // from pty.started, sent again on reattach
	// sealedCommand is opts.Command encrypted for the wing.
	sealedCommand string
	d             clientDirect // the direct path (direct.go)
	flow          clientFlow   // output acknowledgements (flow.go); readLoop only
}

// Open starts or reattaches a session and waits for pty.started.
func (c *Client) Open(ctx context.Context, opts SessionOptions) (*Session, error) {
	key, err := wp.GenerateKey()
	if err != nil {
		return nil, err
	}
	if opts.Spectate && opts.SessionID == "" {
		return nil, errors.New("spectating needs a session id")
	}
	s := &Session{c: c, opts: opts, key: key, id: opts.SessionID, authTok: opts.AuthToken}
	s.d.init()
	if opts.Command != "" && opts.SessionID == "" {
		// The command line is encrypted to the wing's identity key.
		wings, err := c.Wings(ctx)
		if err != nil {
			return nil, err
		}
		pub := ""
		for _, w := range wings {
			if w.WingID == opts.WingID {
				pub = w.PublicKey
			}
		}
		if pub == "" {
			return nil, &RemoteError{Msg: "no wing connected: " + opts.WingID, Code: 1}
		}
		if err := c.verifyKey(opts.WingID, pub); err != nil {
			return nil, err
		}
		ci, err := wp.NewCipher(key, pub, wp.InfoPTY)
		if err != nil {
			return nil, fmt.Errorf("wing %s public key: %w", opts.WingID, err)
		}
		s.sealedCommand = ci.Seal([]byte(opts.Command))
	}
	if err := s.dial(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// AuthToken is the passkey auth token the wing returned, if any.
func (s *Session) AuthToken() string { s.mu.Lock(); defer s.mu.Unlock(); return s.authTok }

// ViewerID is the relay-assigned viewer id of a spectating session.
func (s *Session) ViewerID() string { s.mu.Lock(); defer s.mu.Unlock(); return s.viewer }

// ID is the relay-assigned session id.
func (s *Session) ID() string { s.mu.Lock(); defer s.mu.Unlock(); return s.id }

func (s *Session) dial(ctx context.Context) error {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+s.c.Token)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(dctx, s.c.ptyURL(s.opts.WingID), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: s.c.HTTPClient})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			return ErrUnauthorized
		}
		return fmt.Errorf("dial relay %s: %w", s.c.base(), err)
	}
	ws.SetReadLimit(wp.MaxFrame)
	s.mu.Lock()
	s.ws = ws
	id, tok := s.id, s.authTok
	s.mu.Unlock()
	pub := wp.PublicKeyString(s.key)
	var msg any
	if id == "" {
		msg = wp.Start{Type: wp.TypePTYStart, WingID: s.opts.WingID, PublicKey: pub, Agent: s.opts.Agent, Command: s.sealedCommand,
			Cwd: s.opts.Cwd, Cols: s.opts.Cols, Rows: s.opts.Rows, AuthToken: tok, Acks: true}
	} else if s.opts.Spectate {
		msg = wp.Attach{Type: wp.TypePTYAttach, SessionID: id, WingID: s.opts.WingID, PublicKey: pub, Spectate: true, AuthToken: tok}
	} else {
		msg = wp.Attach{Type: wp.TypePTYAttach, SessionID: id, WingID: s.opts.WingID, PublicKey: pub, Cols: s.opts.Cols, Rows: s.opts.Rows, AuthToken: tok,
			Acks: true} // flow.go
	}
	if err := s.send(ctx, msg); err != nil {
		ws.CloseNow()
		return err
	}
	return nil
}

func (s *Session) send(ctx context.Context, v any) error {
	b, err := wp.Encode(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	if ws == nil {
		return errors.New("not connected")
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return ws.Write(wctx, websocket.MessageText, b)
}

// Input sends keystrokes, encrypted. Before pty.started they are dropped.
func (s *Session) Input(ctx context.Context, p []byte) error {
	s.mu.Lock()
	c, id := s.cipher, s.id
	if c == nil {
		s.mu.Unlock()
		return errors.New("session not started yet")
	}
	seq, snd := s.nextInput(p) // under s.mu: see resetInputSeq
	s.mu.Unlock()
	return s.sendInput(ctx, id, c, seq, snd, p)
}

// Resize tells the wing the terminal size.
func (s *Session) Resize(ctx context.Context, cols, rows int) error {
	s.mu.Lock()
	s.opts.Cols, s.opts.Rows = cols, rows
	id := s.id
	s.mu.Unlock()
	if id == "" {
		return nil
	}
	return s.send(ctx, wp.Resize{Type: wp.TypePTYResize, SessionID: id, Cols: cols, Rows: rows})
}

// Detach leaves the session running and closes the connection.
func (s *Session) Detach(ctx context.Context) error {
	s.mu.Lock()
	s.detached = true
	s.mu.Unlock()
	err := s.send(ctx, wp.SessionRef{Type: wp.TypePTYDetach, SessionID: s.ID()})
	s.Close()
	return err
}

// Kill asks the wing to end the session.
func (s *Session) Kill(ctx context.Context) error {
	return s.send(ctx, wp.SessionRef{Type: wp.TypePTYKill, SessionID: s.ID()})
}

// Close drops the connection.
func (s *Session) Close() {
	s.endDirect()
	s.mu.Lock()
	ws := s.ws
	s.mu.Unlock()
	if ws != nil {
		ws.Close(websocket.StatusNormalClosure, "")
	}
}

// Events are reported to Run's callback.
type Event struct {
	// Kind: "started", "offline", "reconnecting", "reattached"; and what
	// the session asks of its user (notices.go): "browser_open" (URL),
	// "preview" (Preview), "attention".
	Kind      string
	SessionID string
	Err       error
	URL       string
	Preview   *wp.Preview
}

// Run copies decrypted output to out until the remote process exits, and
// returns its exit code. When the relay connection drops, or the wing goes
// offline, it reattaches (with a replay, trimmed to what out has not seen)
// for up to reconnectFor. ctx ending returns ctx.Err().
func (s *Session) Run(ctx context.Context, out io.Writer, onEvent func(Event), reconnectFor time.Duration) (int, error) {
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	reattached := false
	var replay []byte
	for {
		s.mu.Lock()
		ws := s.ws
		s.mu.Unlock()
		code, exited, err := s.readLoop(ctx, ws, out, onEvent, &reattached, &replay)
		if exited {
			return code, err
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		s.mu.Lock()
		detached := s.detached
		s.mu.Unlock()
		if detached {
			return -1, ErrDetached
		}
		if errors.Is(err, ErrDetached) || errors.Is(err, ErrUnauthorized) || s.ID() == "" || reconnectFor <= 0 {
			return -1, err
		}
		onEvent(Event{Kind: "reconnecting", SessionID: s.ID(), Err: err})
		deadline := time.Now().Add(reconnectFor)
		delay := 250 * time.Millisecond
		for {
			select {
			case <-ctx.Done():
				return -1, ctx.Err()
			case <-time.After(delay):
			}
			err = s.dial(ctx)
			if err == nil || errors.Is(err, ErrUnauthorized) || time.Now().After(deadline) {
				break
			}
			delay = min(delay*2, 2*time.Second)
		}
		if err != nil {
			return -1, fmt.Errorf("reattach session %s: %w", s.ID(), err)
		}
		reattached = true
	}
}

type frame struct {
	Type       string `json:"type"`
	SessionID  string `json:"session_id"`
	Data       string `json:"data"`
	Compressed bool   `json:"compressed"`
	PublicKey  string `json:"public_key"`
	ExitCode   int    `json:"exit_code"`
	Error      string `json:"error"`
	Message    string `json:"message"`
	ViewerID   string `json:"viewer_id"`
	AuthToken  string `json:"auth_token"`
	Agent      string `json:"agent"`
	Command    bool   `json:"command"`
	URL        string `json:"url"`
	Seq        *int64 `json:"seq"`
	Window     int64  `json:"window"`
}

// exitResult ends Run with pty.exited.
func (s *Session) exitResult(f frame, out io.Writer, replay *[]byte) (int, bool, error) {
	s.flushReplay(out, replay)
	if f.Error != "" {
		return f.ExitCode, true, &RemoteError{Msg: f.Error, Code: f.ExitCode}
	}
	return f.ExitCode, true, nil
}

// commandDropped: a session was asked to run a command and the wing
// started something else; the session has been killed.
const commandDropped = ("the wing did not run the command: the relay in between dropped pty.start's command field " +
	"(a relay other than warren's relay-server, such as wingthing's, does); the session it started instead was killed. " +
	"Use --command through a warren relay-server, or attach without it and type the command")

const tailKeep = 64 << 10

func (s *Session) write(out io.Writer, p []byte) error {
	s.tail = append(s.tail, p...)
	if len(s.tail) > tailKeep {
		s.tail = s.tail[len(s.tail)-tailKeep:]
	}
	_, err := out.Write(p)
	return err
}

// flushReplay prints what is held of a replay, untrimmed.
func (s *Session) flushReplay(out io.Writer, replay *[]byte) error {
	if *replay == nil {
		return nil
	}
	r := *replay
	*replay = nil
	return s.write(out, r)
}

// replayChunk handles one replay chunk. On a first attach it is printed at
// once. After a reconnect, chunks are held until the point where out's
// tail ends is found in them; from there on they are printed.
func (s *Session) replayChunk(out io.Writer, p []byte, reattached bool, replay *[]byte) error {
	if !reattached || *replay == nil {
		return s.write(out, p)
	}
	*replay = append(*replay, p...)
	if len(s.tail) == 0 {
		return s.flushReplay(out, replay)
	}
	k := min(len(s.tail), 4096)
	if i := bytes.LastIndex(*replay, s.tail[len(s.tail)-k:]); i >= 0 {
		rest := (*replay)[i+k:]
		*replay = nil
		return s.write(out, rest)
	}
	return nil
}

// readLoop handles one connection.
func (s *Session) readLoop(ctx context.Context, ws *websocket.Conn, out io.Writer, onEvent func(Event), reattached *bool, replay *[]byte) (int, bool, error) {
	defer ws.CloseNow()
	// The wing closes a direct channel when the session is reattached.
	defer s.endDirect()
	done := make(chan struct{})
	defer close(done)
	relay := relayFrames(ctx, ws, done)
	var exit *frame // pty.exited, waiting for output still on the direct channel
	var exitBy <-chan time.Time
	for {
		var data []byte
		select {
		case m := <-relay:
			if m.err != nil {
				return -1, false, fmt.Errorf("relay connection: %w", m.err)
			}
			data = m.data
		case b := <-s.d.frames:
			if err := s.directOutput(out, b, replay); err != nil {
				return -1, true, err
			}
			s.flowConsumed(ctx)
			if exit != nil && s.outputComplete(*exit) {
				return s.exitResult(*exit, out, replay)
			}
			continue
		case ev := <-s.d.events:
			if err := s.directEvent(ctx, ev, onEvent); err != nil {
				return 1, true, err
			}
			continue
		case <-exitBy:
			return s.exitResult(*exit, out, replay)
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			continue
		}
		switch f.Type {
		case wp.TypePTYStarted:
			if s.opts.Spectate != (f.ViewerID != "") {
				continue
			}
			if err := s.c.verifyKey(s.opts.WingID, f.PublicKey); err != nil {
				return 1, true, err
			}
			c, err := wp.NewCipher(s.key, f.PublicKey, wp.InfoPTY)
			if err != nil {
				return 1, true, fmt.Errorf("pty.started: %w", err)
			}
			s.mu.Lock()
			s.resetInputSeq() // before Input can use the new cipher
			s.cipher, s.id, s.viewer = c, f.SessionID, f.ViewerID
			if f.AuthToken != "" {
				s.authTok = f.AuthToken
			}
			s.mu.Unlock()
			// A command session is confirmed by the wing; agent "command"
			// is how warren wings without the command field said it.
			if s.sealedCommand != "" && !*reattached && !f.Command && f.Agent != "command" {
				s.send(ctx, wp.SessionRef{Type: wp.TypePTYKill, SessionID: f.SessionID})
				return 1, true, &RemoteError{Msg: commandDropped, Code: 1}
			}
			kind := "started"
			if *reattached {
				kind = "reattached"
			}
			*replay = []byte{}
			onEvent(Event{Kind: kind, SessionID: f.SessionID})
			s.directStarted(ctx)
			s.flowStarted(f.Window)
		case wp.TypePTYOutput:
			s.mu.Lock()
			c, viewer := s.cipher, s.viewer
			s.mu.Unlock()
			if c == nil || f.ViewerID != viewer {
				continue
			}
			p, err := c.Open(f.Data)
			if err != nil {
				return 1, true, fmt.Errorf("pty.output does not decrypt: %w", err)
			}
			if f.Compressed {
				if p, err = wp.DecompressChunk(p); err != nil {
					return 1, true, fmt.Errorf("replay chunk: %w", err)
				}
				if err := s.replayChunk(out, p, *reattached, replay); err != nil {
					return -1, true, err
				}
				continue
			}
			if err := s.flushReplay(out, replay); err != nil {
				return -1, true, err
			}
			s.flowFirst(ctx, f.Seq)
			if err := s.liveOutput(out, f.Seq, p); err != nil {
				return -1, true, err
			}
			s.flowConsumed(ctx)
		case wp.TypePTYMigrate, wp.TypePTYMigrated, wp.TypePTYFallback:
			if err := s.directSignal(ctx, f, onEvent, out, replay); err != nil {
				return 1, true, err
			}
		case wp.TypePTYExited:
			if v := s.ViewerID(); f.ViewerID != "" && v != "" && f.ViewerID != v {
				continue
			}
			if !s.outputComplete(f) {
				// Output sent over the direct channel is still coming.
				exit, exitBy = &f, time.After(exitWait)
				continue
			}
			return s.exitResult(f, out, replay)
		case wp.TypePTYBrowserOpen, wp.TypePTYPreview, wp.TypeAttention:
			s.notice(f, onEvent)
		case wp.TypeBandwidth:
			// The relay closes the socket next; reattaching would be cut
			// off again.
			return 1, true, &RemoteError{Msg: f.Message, Code: 1}
		case wp.TypeWingOffline:
			onEvent(Event{Kind: "offline", SessionID: s.ID()})
			return -1, false, errors.New("wing offline")
		case wp.TypeRelayRestart:
			return -1, false, errors.New("relay restarting")
		case wp.TypeError:
			if s.ID() == "" || s.opts.Spectate {
				return 1, true, &RemoteError{Msg: f.Message, Code: 1}
			}
			return -1, false, &RemoteError{Msg: f.Message, Code: 1}
		}
	}
}

// RemoteError is an error reported by the relay or the wing.
type RemoteError struct {
	Msg  string
	Code int
}

func (e *RemoteError) Error() string { return e.Msg }
