package wingagent

import (
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/webrtc/v4"
	"github.com/warrenhq/warren/internal/transport/backoff"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// State is the wing's connection state (docs/protocols/wing.md §3.1).
type State string

// States.
const (
	StateConnecting   State = "connecting"
	StateConnected    State = "connected"
	StateDisconnected State = "disconnected"
	StateAuthFailed   State = "auth_failed"
)

// ErrAuthRejected is returned by Run when the relay refuses the token
// (HTTP 401 on the upgrade). The wing does not retry.
var ErrAuthRejected = errors.New("the relay rejected the wing token (401)")

// Config configures an Agent.
type Config struct {
	// RelayURL is the relay's base URL (http, https, ws or wss). Required.
	RelayURL string
	// Token is the wing token. Required.
	Token string
	// WingID is the machine id announced in wing.register. Required.
	WingID string
	// Key is the wing's long-term X25519 identity. Required.
	Key *ecdh.PrivateKey
	// Hostname and Version are announced. Default os.Hostname(), "".
	Hostname, Version string
	// Shell runs for the default agent ("" or "shell"). Default $SHELL,
	// else /bin/sh.
	Shell string
	// Agents maps agent names to argv. Default none.
	Agents map[string][]string
	// AllowCommands honours pty.start's command extension (run with
	// Shell -c). Default false.
	AllowCommands bool
	// Spectate allows spectator attaches. Default false.
	Spectate bool
	// Env is added to the environment of sessions. Default none.
	Env []string
	// HeartbeatInterval is the wing.heartbeat period. Default 30s.
	HeartbeatInterval time.Duration
	// BackoffInitial and BackoffMax shape reconnects. Default 1s, 10s.
	BackoffInitial, BackoffMax time.Duration
	// ReplaySize caps each session's replay buffer. Default 2 MiB.
	ReplaySize int
	// Access is the lock state and allow list; SetAccess changes it while
	// running. Default unlocked (owner only).
	Access Access
	// OpenHelper is the wing executable: sessions get $BROWSER pointing at
	// "OpenHelper open URL", which asks the session's user to open URL.
	// Default "": $BROWSER is left alone (`wing open` still works).
	OpenHelper string
	// StateDir keeps what must survive a restart: the allow-list edits
	// made through requests (AllowStateFile, mode 0600). Default "": such
	// edits last until the wing stops.
	StateDir string
	// PasskeyTTL is how long a passkey auth token stays valid. Default 1h.
	PasskeyTTL time.Duration
	// PasskeyTimeout bounds the wait for passkey.response. Default 60s.
	PasskeyTimeout time.Duration
	// Now is the clock for passkey token and challenge expiry. Default
	// time.Now.
	Now func() time.Time
	// DisableDirect refuses direct sessions (pty.migrate). Default false:
	// clients may move a session onto a WebRTC DataChannel.
	DisableDirect bool
	// DirectNetworks limits the wing's ICE host candidates to these
	// prefixes. Default: every address, loopback included.
	DirectNetworks []netip.Prefix
	// ICEServers are used for direct sessions besides those the relay
	// hands out in registered. Default none.
	ICEServers []wp.ICEServer
	// OutputWindow bounds, per session, the live output sent over the
	// relay to a controller that acknowledges output (pty.ack) and not
	// yet acknowledged: the wing stops reading the session's PTY while
	// that much is outstanding, so a fast program waits for its viewer
	// instead of overflowing the relay's send queue
	// (docs/protocols/wing.md §2.12). Default wp.OutputWindow (2 MiB);
	// negative: no window, acks are not asked for.
	OutputWindow int
	// OnState is called on every state change. Optional.
	OnState func(State)
	// HTTPClient dials the relay. Default http.DefaultClient.
	HTTPClient *http.Client
}

// Agent is a running wing.
type Agent struct {
	cfg Config
	log *slog.Logger
	pub string

	connMu sync.Mutex
	conn   *websocket.Conn
	wmu    sync.Mutex // serialises writes on conn

	mu       sync.Mutex
	sessions map[string]*session
	history  []sessionItem

	guard   *guard
	ciphers cipherCache

	pkMu             sync.Mutex
	pending          map[string]pendingPasskey   // by session_id
	tunnelChallenges map[string]pendingChallenge // by user id

	ownerMu sync.Mutex
	owner   string // the owner's relay user id; "" while unknown

	hooks *hooks // the hook socket (hooks.go); nil outside Run

	allowMu sync.Mutex // orders allow-list edits and their saves
	base    Access     // the configured Access, without request edits
	edits   allowEdits // request edits, kept in StateDir

	// Direct sessions (direct.go).
	rtcOnce sync.Once
	rtc     *webrtc.API
	iceMu   sync.Mutex
	ice     []wp.ICEServer       // from the relay's registered
	directs map[*directConn]bool // open peer connections, under mu
}

// pendingPasskey waits for the passkey.response of a session's starter.
type pendingPasskey struct {
	ch   chan wp.PasskeyResponse
	user string
}

// New checks cfg and returns an Agent.
func New(cfg Config, log *slog.Logger) (*Agent, error) {
	switch {
	case cfg.RelayURL == "":
		return nil, errors.New("wing: RelayURL is required")
	case cfg.Token == "":
		return nil, errors.New("wing: Token is required")
	case cfg.WingID == "":
		return nil, errors.New("wing: WingID is required")
	case cfg.Key == nil:
		return nil, errors.New("wing: Key is required")
	}
	if cfg.Hostname == "" {
		cfg.Hostname, _ = os.Hostname()
	}
	if cfg.Shell == "" {
		cfg.Shell = os.Getenv("SHELL")
		if cfg.Shell == "" {
			cfg.Shell = "/bin/sh"
		}
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.BackoffInitial <= 0 {
		cfg.BackoffInitial = time.Second
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.ReplaySize <= 0 {
		cfg.ReplaySize = wp.ReplaySize
	}
	if cfg.OutputWindow == 0 {
		cfg.OutputWindow = wp.OutputWindow
	}
	if cfg.PasskeyTTL <= 0 {
		cfg.PasskeyTTL = time.Hour
	}
	if cfg.PasskeyTimeout <= 0 {
		cfg.PasskeyTimeout = 60 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{cfg: cfg, log: log, pub: wp.PublicKeyString(cfg.Key), sessions: map[string]*session{},
		guard:   &guard{ttl: cfg.PasskeyTTL, tokens: map[string]authToken{}, now: cfg.Now},
		pending: map[string]pendingPasskey{}, tunnelChallenges: map[string]pendingChallenge{}, directs: map[*directConn]bool{},
		owner: tokenSubject(cfg.Token)}
	a.edits = allowEdits{Version: allowEditsVersion}
	if cfg.StateDir != "" {
		e, err := loadAllowEdits(cfg.StateDir)
		if err != nil {
			return nil, err
		}
		a.edits = e
	}
	a.setBaseAccess(cfg.Access)
	return a, nil
}

// SetAccess replaces the lock state and allow list without touching running
// sessions, and tells the relay (wing.config). Users no longer allowed are
// refused from their next request on.
// The allow-list edits made through requests stay on top of it.
func (a *Agent) SetAccess(ctx context.Context, acc Access) {
	a.setBaseAccess(acc)
	a.log.Info("access updated", "locked", acc.Locked, "allowed_count", len(a.guard.snapshot().Allow))
	a.sendConfig(ctx)
}

// Access returns the live lock state and allow list.
func (a *Agent) Access() Access { return a.guard.snapshot() }

// sendConfig sends wing.config; not being connected is fine (the next
// wing.register carries the state).
func (a *Agent) sendConfig(ctx context.Context) {
	acc := a.guard.snapshot()
	a.send(ctx, wp.WingConfig{Type: wp.TypeWingConfig, WingID: a.cfg.WingID, Locked: acc.Locked, AllowedCount: len(acc.Allow)})
}

// PublicKey is the wing's identity public key in wire form.
func (a *Agent) PublicKey() string { return a.pub }

// WingURL derives the wing socket URL from a relay base URL.
func WingURL(base string) string {
	base = strings.TrimRight(base, "/")
	switch {
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + base[len("https://"):]
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + base[len("http://"):]
	}
	return base + "/ws/wing"
}

func (a *Agent) setState(s State) {
	if a.cfg.OnState != nil {
		a.cfg.OnState(s)
	}
}

// Run connects and serves until ctx ends (nil) or the relay rejects the
// token (ErrAuthRejected). Sessions survive reconnects; they are killed
// when Run returns.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.startHooks(); err != nil {
		a.log.Warn("sessions cannot ask to open URLs or show previews", "err", err)
	}
	defer a.stopHooks()
	defer a.killAll()
	bo := backoff.Backoff{Initial: a.cfg.BackoffInitial, Max: a.cfg.BackoffMax, Jitter: -1}
	for {
		a.setState(StateConnecting)
		dialed, restart, err := a.connect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrAuthRejected) {
			a.setState(StateAuthFailed)
			return err
		}
		a.setState(StateDisconnected)
		if dialed {
			bo.Reset()
		}
		var d time.Duration
		if restart {
			bo.Reset()
			d = time.Duration(rand.Int64N(int64(time.Second)))
			a.log.Info("relay restarting; reconnecting", "in", d.Round(time.Millisecond))
		} else {
			d = bo.Next()
			a.log.Warn("relay connection lost; reconnecting", "err", err, "in", d)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
	}
}

var errRestart = errors.New("relay restart")

// connect runs one connection. dialed says the WebSocket dial succeeded.
func (a *Agent) connect(ctx context.Context) (dialed, restart bool, err error) {
	hdr := http.Header{}
	hdr.Set("Authorization", "Bearer "+a.cfg.Token)
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ws, resp, err := websocket.Dial(dctx, WingURL(a.cfg.RelayURL), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: a.cfg.HTTPClient})
	cancel()
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusUnauthorized {
			msg := ""
			if resp.Body != nil {
				b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				msg = strings.TrimSpace(string(b))
			}
			return false, false, fmt.Errorf("%w: %s", ErrAuthRejected, msg)
		}
		return false, false, fmt.Errorf("dial %s: %w", WingURL(a.cfg.RelayURL), err)
	}
	ws.SetReadLimit(wp.MaxFrame)
	a.connMu.Lock()
	a.conn = ws
	a.connMu.Unlock()
	defer func() {
		a.connMu.Lock()
		a.conn = nil
		a.connMu.Unlock()
		ws.CloseNow()
		// Acks in flight are lost with the connection, and controllers
		// reattach: no session waits for one meanwhile.
		a.flowsOff("relay connection closed")
	}()

	cctx, stop := context.WithCancel(ctx)
	defer stop()
	reg := wp.Register{Type: wp.TypeWingRegister, WingID: a.cfg.WingID, Hostname: a.cfg.Hostname, Platform: runtime.GOOS,
		Version: a.cfg.Version, Agents: a.agentNames(), Skills: []string{}, Labels: []string{}, Identities: []string{},
		PublicKey: a.pub}
	acc := a.guard.snapshot()
	reg.Locked, reg.AllowedCount = acc.Locked, len(acc.Allow)
	if err := a.send(cctx, reg); err != nil {
		return true, false, err
	}
	go a.heartbeat(cctx)
	for {
		_, data, err := ws.Read(cctx)
		if err != nil {
			return true, false, fmt.Errorf("read: %w", err)
		}
		if err := a.handle(cctx, data); errors.Is(err, errRestart) {
			return true, true, nil
		}
	}
}

// agentNames is what pty.start's agent may name: "shell" (the default
// program) first, then the configured agents, sorted. Clients tell a wing
// with a shell from one with only AI agents (a wingthing wing) by it.
func (a *Agent) agentNames() []string {
	names := make([]string, 0, len(a.cfg.Agents))
	for n := range a.cfg.Agents {
		if n != "shell" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return append([]string{"shell"}, names...)
}

func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.send(ctx, wp.Heartbeat{Type: wp.TypeWingHeartbeat, WingID: a.cfg.WingID}); err != nil {
				a.connMu.Lock()
				if a.conn != nil {
					a.conn.CloseNow()
				}
				a.connMu.Unlock()
				return
			}
		}
	}
}

var errNotConnected = errors.New("not connected to the relay")

// send writes one message on the current connection (10 s timeout).
func (a *Agent) send(ctx context.Context, v any) error {
	b, err := wp.Encode(v)
	if err != nil {
		return err
	}
	a.connMu.Lock()
	ws := a.conn
	a.connMu.Unlock()
	if ws == nil {
		return errNotConnected
	}
	a.wmu.Lock()
	defer a.wmu.Unlock()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return ws.Write(wctx, websocket.MessageText, b)
}

func (a *Agent) handle(ctx context.Context, data []byte) error {
	typ, err := wp.DecodeType(data)
	if err != nil {
		a.log.Debug("bad frame from relay", "err", err)
		return nil
	}
	switch typ {
	case wp.TypeRegistered:
		var m wp.Registered
		wp.Decode(data, &m)
		if m.UserID != "" {
			a.setOwner(m.UserID)
		}
		a.setICEServers(m.ICEServers)
		a.setState(StateConnected)
		a.log.Info("registered with the relay", "wing", a.cfg.WingID, "conn", m.WingID, "owner", a.ownerID())
		go func() {
			// Surviving sessions wait for the user's pty.attach (docs/protocols/wing.md §3.1).
			select {
			case <-ctx.Done():
			case <-time.After(500 * time.Millisecond):
				a.mu.Lock()
				n := len(a.sessions)
				a.mu.Unlock()
				if n > 0 {
					a.log.Info("sessions kept across the reconnect", "count", n)
				}
			}
		}()
	case wp.TypeRelayRestart:
		return errRestart
	case wp.TypeError:
		var m wp.Error
		wp.Decode(data, &m)
		a.log.Warn("relay error", "message", m.Message)
	case wp.TypePTYStart:
		var m wp.Start
		if wp.Decode(data, &m) == nil {
			go a.start(ctx, m)
		}
	case wp.TypePTYAttach:
		var m wp.Attach
		if wp.Decode(data, &m) == nil {
			go a.attach(ctx, m)
		}
	case wp.TypePTYInput:
		var m wp.Input
		if wp.Decode(data, &m) == nil {
			// Input needs no relay identity: it only decrypts with the key
			// of the user attached as controller.
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.queueInput(m.Data, m.Seq)
			}
		}
	case wp.TypePTYResize:
		var m wp.Resize
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.resize(m.Cols, m.Rows)
			}
		}
	case wp.TypePTYAck:
		// Sealed with the controller's key (flow.go).
		var m wp.Ack
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.ack(m.Data)
			}
		}
	case wp.TypePTYDetach:
		// warren's relay: the controller left; its window goes too.
		var m wp.SessionRef
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.flowOff("the controller detached")
			}
		}
	case wp.TypePTYKill:
		var m wp.SessionRef
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, false); s != nil {
				s.kill()
			}
		}
	case wp.TypePTYAttentionAk:
		var m wp.SessionRef
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.ackAttention()
			}
		}
	case wp.TypeTunnelReq:
		go a.tunnel(ctx, data)
	case wp.TypePasskeyResp:
		var m wp.PasskeyResponse
		if wp.Decode(data, &m) == nil {
			a.pkMu.Lock()
			p, ok := a.pending[m.SessionID]
			a.pkMu.Unlock()
			// Only the user being challenged answers; the assertion is
			// verified against that user's keys anyway.
			if u := frameSender(data).UserID; ok && (u == "" || u == p.user) {
				select {
				case p.ch <- m:
				default:
				}
			}
		}
	case wp.TypePTYMigrate, wp.TypePTYFallback:
		// Signals are sealed with the controller's key: only it can
		// send one the wing accepts (docs/protocols/wing.md §2.8).
		var m wp.DirectFrame
		if wp.Decode(data, &m) == nil {
			if s := a.sessionFor(data, typ, m.SessionID, true); s != nil {
				s.directFrame(ctx, typ, m)
			}
		}
	default:
		a.log.Debug("unknown frame from relay", "type", typ)
	}
	return nil
}

// frameSender reads the identity the relay set on a frame.
func frameSender(data []byte) (f struct {
	UserID  string `json:"user_id"`
	Email   string `json:"email"`
	OrgRole string `json:"org_role"`
}) {
	json.Unmarshal(data, &f)
	return f
}

// sessionFor returns the session a frame operates on if its sender may:
// warren's relay sets user_id on every frame it forwards, and only a user
// who may control the session (its starter, or the wing's owner), and
// whom the lock admits, may act on it. A frame without user_id comes from
// a relay that does not say who sends it (wingthing's forwards input,
// resize and kill bare); anonymousOK lets through what cannot hurt the
// session, and a kill is refused.
func (a *Agent) sessionFor(data []byte, typ, sid string, anonymousOK bool) *session {
	s := a.session(sid)
	if s == nil {
		return nil
	}
	f := frameSender(data)
	if f.UserID == "" {
		if !anonymousOK {
			a.log.Warn("session operation refused: the relay did not say who asks", "type", typ, "session", sid)
			return nil
		}
		return s
	}
	id := a.identify(f.UserID, f.Email, f.OrgRole)
	if !a.guard.allowed(id) || !a.mayControl(id, s) {
		a.log.Warn("session operation refused: the user may not operate this session", "type", typ, "session", sid, "user", f.UserID)
		return nil
	}
	return s
}

// identify is the identity of a relay-set sender. The owner is the user
// whose user_id is the wing's owner's; org_role is only a hint, used while
// the wing does not know its owner's id (wingthing's relay sends no
// org_role on pty.start or pty.attach, and one with orgs may call an org's
// owner "owner" on a wing that is not theirs).
func (a *Agent) identify(user, email, role string) identity {
	id := identity{user: user, email: email, role: role}
	if owner := a.ownerID(); owner != "" {
		id.isOwner = user != "" && user == owner
	} else {
		id.isOwner = role == "owner"
	}
	return id
}

func (a *Agent) ownerID() string {
	a.ownerMu.Lock()
	defer a.ownerMu.Unlock()
	return a.owner
}

func (a *Agent) setOwner(user string) {
	a.ownerMu.Lock()
	defer a.ownerMu.Unlock()
	if a.owner != user {
		if a.owner != "" {
			a.log.Warn("the relay names another owner than the wing token's sub; following the relay", "token_sub", a.owner, "relay", user)
		}
		a.owner = user
	}
}

// tokenSubject is the sub claim of a JWT wing token, read without checking
// the signature: it is the wing's own credential, and says whom the wing
// serves. "" for an opaque token.
func tokenSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	return c.Sub
}

func (a *Agent) session(id string) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[id]
}

// allSessions returns the sessions open now.
func (a *Agent) allSessions() []*session {
	a.mu.Lock()
	defer a.mu.Unlock()
	all := make([]*session, 0, len(a.sessions))
	for _, s := range a.sessions {
		all = append(all, s)
	}
	return all
}

func (a *Agent) killAll() {
	all := a.allSessions()
	for _, s := range all {
		s.kill()
		s.flowOff("the wing is stopping")
	}
	for _, s := range all {
		<-s.done
	}
	a.closeDirects()
}

// Sessions returns the number of live sessions.
func (a *Agent) Sessions() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.sessions)
}
