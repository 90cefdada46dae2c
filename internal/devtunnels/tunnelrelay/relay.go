package tunnelrelay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// HandshakeTimeout bounds the SSH handshake on every relay WebSocket, the
// same 10 s the SDK peers use on their side.
const HandshakeTimeout = 10 * time.Second

// CloseStatusReplaced is the WebSocket close code sent to a host that a newer
// host of the same tunnel replaced (4000–4999 is the private-use range;
// 4000+11 mirrors SSH disconnect reason 11). See the package documentation
// for why this stands in for SSH_MSG_DISCONNECT.
const CloseStatusReplaced websocket.StatusCode = 4000 + tunnelproto.DisconnectTooManyConnections

// ReplacedReason is the close reason sent with CloseStatusReplaced. It is
// worded like x/crypto's disconnect error for people reading logs and for
// hosts that match the text; warren's tunnel-host checks only the close code.
const ReplacedReason = "ssh: disconnect, reason 11: replaced by another host"

// Config configures a Relay.
type Config struct {
	// Tokens verifies the tunnel access tokens of upgrades and of V2 port
	// requests. Required.
	Tokens *token.Issuer
	// Store resolves the {tunnelId} of the URLs (ID, name or name.domain).
	// Required.
	Store store.Store
	// HostKeys are the relay's SSH host keys on host and V2 client
	// sessions, e.g. from hostkeys.LoadOrCreate: ed25519 for warren and
	// OpenSSH-style peers, ECDSA P-384 for dev-tunnels-ssh, which has no
	// ed25519. nil: New generates both for this Relay (peers do not verify
	// them, docs/protocols/devtunnels.md §2.4).
	HostKeys []ssh.Signer
	// Now is the clock for session bookkeeping. Default time.Now.
	Now func() time.Time
	// Registerer receives the relay's warren_relay_tunnel_* metrics (see
	// metrics.go). nil: the metrics are kept but not registered.
	Registerer prometheus.Registerer
	// HostConnected, if set, is called once a host session of tunnelID is
	// up here (after a host it replaced was told), before the session
	// serves anything: a clustered relay records its node on the
	// tunnel's endpoints there (see cluster.go). Optional.
	HostConnected func(tunnelID string)
}

// Relay serves the host and client relay WebSockets of relay-server. It is
// safe for concurrent use.
type Relay struct {
	cfg    Config
	log    *slog.Logger
	sshCfg *ssh.ServerConfig
	m      *metrics

	// ctx outlives every session's WebSocket; Close cancels it as a last
	// resort after the graceful closes.
	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	closed   bool
	hosts    map[string]*hostSession // by tunnel ID
	sessions sync.WaitGroup          // running ServeHost/ServeClient sessions
	once     sync.Once
}

// New returns a Relay for cfg. logger may be nil (discard).
func New(cfg Config, logger *slog.Logger) (*Relay, error) {
	if cfg.Tokens == nil {
		return nil, errors.New("tunnelrelay: Config.Tokens is required")
	}
	if cfg.Store == nil {
		return nil, errors.New("tunnelrelay: Config.Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.HostKeys) == 0 {
		keys, err := hostkeys.Generate()
		if err != nil {
			return nil, fmt.Errorf("tunnelrelay: %w", err)
		}
		cfg.HostKeys = keys
	}
	// Hosts and V2 clients authenticate with the token on the WebSocket
	// upgrade; the SSH layer has nothing left to check (docs/protocols/devtunnels.md §2.4).
	sshCfg := &ssh.ServerConfig{NoClientAuth: true, Config: LegConfig(true)}
	for _, k := range cfg.HostKeys {
		sshCfg.AddHostKey(k)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("tunnelrelay: metrics: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Relay{
		cfg:    cfg,
		log:    logger,
		sshCfg: sshCfg,
		m:      m,
		ctx:    ctx,
		cancel: cancel,
		hosts:  make(map[string]*hostSession),
	}, nil
}

// HostConnected reports whether a host session is connected for the tunnel
// with this ID. endpointID is ignored: warren has one endpoint per tunnel.
func (r *Relay) HostConnected(tunnelID, endpointID string) bool {
	return r.host(tunnelID) != nil
}

// Close disconnects every host and client session and waits for their
// handlers to return. Later upgrades are refused with 503. Close is
// idempotent.
func (r *Relay) Close() error {
	r.once.Do(func() {
		r.mu.Lock()
		r.closed = true
		hosts := make([]*hostSession, 0, len(r.hosts))
		for _, h := range r.hosts {
			hosts = append(hosts, h)
		}
		r.mu.Unlock()
		for _, h := range hosts {
			// Closing the host's socket ends its session, and the session's
			// end closes its clients.
			go h.conn.Close()
		}
		done := make(chan struct{})
		go func() { r.sessions.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(6 * time.Second): // past wsconn's 5 s close handshake
			r.cancel()
			<-done
		}
		r.cancel()
	})
	return nil
}

// host returns the connected host session of a tunnel, or nil.
func (r *Relay) host(tunnelID string) *hostSession {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hosts[tunnelID]
}

// begin registers a session handler with Close; false once the relay is
// closed.
func (r *Relay) begin() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.sessions.Add(1)
	return true
}

// offered returns the subprotocols the request offers, in order.
func offered(req *http.Request) []string {
	var out []string
	for _, h := range req.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(h, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// authorize applies the pre-upgrade checks shared by both roles (docs/protocols/devtunnels.md §2.3):
// 401 for a missing, bad or expired token, 404 for an unknown tunnel, 403
// for a token of another tunnel or without scope. On failure it has written
// the response and counted the upgrade outcome for role.
func (r *Relay) authorize(w http.ResponseWriter, req *http.Request, role, ref, scope string) (*store.Tunnel, bool) {
	scheme, cred, ok := token.ParseAuthorization(req.Header.Get("Authorization"))
	if !ok || scheme != token.SchemeTunnel {
		r.m.upgrade(role, upgradeUnauthorized)
		http.Error(w, "missing or malformed tunnel access token", http.StatusUnauthorized)
		return nil, false
	}
	claims, err := r.cfg.Tokens.Verify(cred)
	if err != nil {
		r.m.upgrade(role, upgradeUnauthorized)
		http.Error(w, "invalid tunnel access token", http.StatusUnauthorized)
		return nil, false
	}
	t, err := r.cfg.Store.FindTunnel(req.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		r.m.upgrade(role, upgradeNotFound)
		http.Error(w, "tunnel not found", http.StatusNotFound)
		return nil, false
	}
	if err != nil {
		r.m.upgrade(role, upgradeError)
		r.log.Error("tunnel lookup failed", "ref", ref, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return nil, false
	}
	if claims.TunnelID != t.ID || !claims.HasScope(scope) {
		r.m.upgrade(role, upgradeForbidden)
		http.Error(w, "Forbidden", http.StatusForbidden)
		return nil, false
	}
	if !claims.SameInstance(t.Created) {
		r.m.upgrade(role, upgradeUnauthorized)
		http.Error(w, "the tunnel access token was issued for an earlier tunnel with this id, deleted since; obtain a new token", http.StatusUnauthorized)
		return nil, false
	}
	return t, true
}

// accept upgrades with exactly proto and returns the byte-stream view. It
// counts the upgrade outcome for role.
func (r *Relay) accept(w http.ResponseWriter, req *http.Request, role, proto string) (*websocket.Conn, *wsconn.Conn, bool) {
	ws, err := wsconn.Accept(w, req, &websocket.AcceptOptions{Subprotocols: []string{proto}})
	if err != nil {
		r.m.upgrade(role, upgradeBadRequest)
		r.log.Debug("websocket upgrade failed", "err", err)
		return nil, nil, false // Accept wrote the response
	}
	if ws.Subprotocol() != proto {
		r.m.upgrade(role, upgradeBadRequest)
		ws.Close(websocket.StatusProtocolError, "subprotocol not negotiated")
		return nil, nil, false
	}
	r.m.upgrade(role, upgradeOK)
	local, remote := wsconn.RequestAddrs(req)
	return ws, wsconn.New(r.ctx, ws, &wsconn.Options{LocalAddr: local, RemoteAddr: remote}), true
}

// verifyToken checks a token carried inside SSH (V2 port requests).
func (r *Relay) verifyToken(tok, tunnelID string, created time.Time, scope string) error {
	if tok == "" {
		return errors.New("no access token")
	}
	c, err := r.cfg.Tokens.Verify(tok)
	if err != nil {
		return err
	}
	if c.TunnelID != tunnelID {
		return errors.New("token for another tunnel")
	}
	if !c.SameInstance(created) {
		return errors.New("token for an earlier tunnel with this id")
	}
	if !c.HasScope(scope) {
		return fmt.Errorf("token lacks scope %q", scope)
	}
	return nil
}

// serverHandshake runs the SSH server handshake of role under
// HandshakeTimeout.
func (r *Relay) serverHandshake(c *wsconn.Conn, role string) (*ssh.ServerConn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	_ = c.SetDeadline(time.Now().Add(HandshakeTimeout))
	sc, chans, reqs, err := ssh.NewServerConn(c, r.sshCfg)
	if err != nil {
		return nil, nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	r.m.kex.WithLabelValues(role, kexKind(sc)).Inc()
	return sc, chans, reqs, nil
}
