package tunnelclient

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/transport/backoff"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// Config configures a Client.
type Config struct {
	// RelayURL is the management API base URL of relay-server.
	RelayURL string
	TunnelID string
	// APIKey is the operator key ("Bearer"), used to read the tunnel with
	// a fresh connect token. Optional if ConnectToken is given.
	APIKey string
	// ConnectToken is a connect-scope tunnel token.
	ConnectToken string
	// Mode is "auto" (offer V2 then V1; the default), "v2" or "v1".
	Mode string
	// E2E asks the host, on V2 sessions, for end-to-end encryption of each
	// stream (an SSH session inside the channel, the host key checked
	// against the endpoint's hostPublicKeys), so that the relay sees only
	// ciphertext. Default off: the relay is the operator's own and TLS
	// protects both of its legs. V1 streams are end-to-end encrypted anyway
	// (the nested SSH session).
	E2E bool
	// Bind is the local address listeners bind to; default "127.0.0.1".
	Bind string
	// PortMap maps remote ports to local ones; unmapped ports listen on
	// the same number.
	PortMap map[uint16]uint16
	// AllowInsecureNone offers the unencrypted "none" SSH key exchange on
	// a V2 relay socket even when it is plain ws:// to a relay that is not
	// on loopback (see tunnelrelay.NoneAllowed). Default false: there the
	// standard key exchange encrypts the relay leg. V1 sessions are always
	// encrypted end to end.
	AllowInsecureNone bool
	HTTPClient        *http.Client          // management API; default: 30s timeout
	Backoff           *backoff.Backoff      // nil: 100ms → 12.8s, jitter 0.5
	Registerer        prometheus.Registerer // nil: no metrics
}

// Event kinds.
const (
	EventReady        = "ready"
	EventRemoved      = "removed"
	EventConnected    = "connected"
	EventDisconnected = "disconnected"
)

// Event reports a change. For "ready" and "removed", RemotePort and
// LocalPort name the port and Addr is the listener address; a "ready" with
// Err set means the listener could not be opened and the port is skipped.
// For "connected", Addr is the negotiated subprotocol; for "disconnected",
// Err is why the session ended.
type Event struct {
	Kind                  string
	RemotePort, LocalPort uint16
	Addr                  string
	Err                   error
}

// Modes: the relay protocol versions offered.
const (
	ModeAuto = tunnelrelay.ModeAuto // V2, then V1
	ModeV2   = tunnelrelay.ModeV2
	ModeV1   = tunnelrelay.ModeV1
)

var (
	// ErrTunnelNotFound: the tunnel does not exist (404).
	ErrTunnelNotFound = errors.New("tunnelclient: tunnel not found")
	// ErrRefused: the credentials were refused (403, or 401 that a token
	// refresh did not cure).
	ErrRefused = errors.New("tunnelclient: access refused")
	// ErrNoHost: no host is connected to the tunnel (first connect only).
	ErrNoHost = errors.New("tunnelclient: no host connected to the tunnel")
	// ErrBadConfig is wrapped by New's configuration errors.
	ErrBadConfig = errors.New("tunnelclient: bad configuration")
)

const (
	pendingWait = 10 * time.Second
	staleGrace  = 3 * time.Second
)

// Client is a tunnel client. Run it once.
type Client struct {
	cfg Config
	log *slog.Logger
	api *apiclient.Client
	wsc *http.Client
	met *metrics
	ran atomic.Bool

	ctx    context.Context
	events chan<- Event
	wg     sync.WaitGroup

	mu        sync.Mutex
	token     string
	sess      *session
	changed   chan struct{} // closed and replaced when sess or its ports change
	listeners map[uint16]*listener
	closed    bool
}

// New validates cfg and builds a Client.
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mode, err := tunnelrelay.CheckTarget(cfg.RelayURL, cfg.TunnelID, cfg.Mode)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	cfg.Mode = mode
	if cfg.APIKey == "" && cfg.ConnectToken == "" {
		return nil, fmt.Errorf("%w: APIKey or ConnectToken is required", ErrBadConfig)
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1"
	}
	if cfg.Backoff == nil {
		cfg.Backoff = backoff.Reconnect()
	}
	c := &Client{
		cfg:       cfg,
		log:       logger.With("tunnel", cfg.TunnelID),
		token:     cfg.ConnectToken,
		changed:   make(chan struct{}),
		listeners: make(map[uint16]*listener),
	}
	httpc := cfg.HTTPClient
	if httpc == nil {
		httpc = &http.Client{Timeout: 30 * time.Second}
	}
	c.api = apiclient.New(apiclient.Config{BaseURL: cfg.RelayURL, Key: cfg.APIKey, Token: c.currentToken, HTTPClient: httpc})
	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		hc.Timeout = 0 // coder/websocket rejects a client timeout
		c.wsc = &hc
	}
	if cfg.Registerer != nil {
		var err error
		if c.met, err = newMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Protocol returns the subprotocol of the current session, or "" when
// disconnected.
func (c *Client) Protocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.proto
}

// Listeners returns the current listeners as remote port → local address.
func (c *Client) Listeners() map[uint16]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := make(map[uint16]string, len(c.listeners))
	for p, l := range c.listeners {
		m[p] = l.ln.Addr().String()
	}
	return m
}

// fatalError marks an error that ends Run.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func fatal(err error) error { return &fatalError{err} }

// errNoHostYet is the retryable form of ErrNoHost after a first session.
var errNoHostYet = errors.New("tunnelclient: no host connected (will retry)")

// Run connects and serves until ctx ends (nil) or a fatal error.
func (c *Client) Run(ctx context.Context, events chan<- Event) error {
	if !c.ran.CompareAndSwap(false, true) {
		return errors.New("tunnelclient: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.ctx, c.events = ctx, events
	defer func() {
		cancel()
		c.closeAll()
		c.wg.Wait()
	}()
	first := true
	for {
		connected, err := c.runOnce(ctx, first)
		if ctx.Err() != nil {
			return nil
		}
		if connected {
			first = false
			c.cfg.Backoff.Reset()
			c.emit(Event{Kind: EventDisconnected, Err: err})
		}
		var fe *fatalError
		if errors.As(err, &fe) {
			c.log.Error("tunnel client stopped", "err", fe.err)
			return fe.err
		}
		c.log.Warn("relay connection failed; retrying", "err", err)
		if c.met != nil {
			c.met.retries.Inc()
		}
		d := c.cfg.Backoff.Next()
		if errors.Is(err, apiclient.ErrThrottled) {
			d = max(d, apiclient.ThrottledRetryDelay)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

func (c *Client) emit(ev Event) {
	if c.events == nil {
		return
	}
	select {
	case c.events <- ev:
	case <-c.ctx.Done():
	}
}

// getTunnel reads the tunnel with its ports and a connect token, and keeps
// the token. The API authenticates with the API key, else the current
// connect token.
func (c *Client) getTunnel(ctx context.Context) (*tunnelproto.Tunnel, error) {
	t, err := c.api.GetTunnel(ctx, c.cfg.TunnelID, apiclient.GetOptions{
		IncludePorts: true, TokenScopes: []string{tunnelproto.ScopeConnect},
	})
	var se *apiclient.StatusError
	switch {
	case err == nil:
	case errors.Is(err, apiclient.ErrInvalidURL):
		return nil, fatal(err)
	case errors.Is(err, apiclient.ErrNotFound):
		return nil, fatal(ErrTunnelNotFound)
	case errors.Is(err, apiclient.ErrUnauthorized), errors.Is(err, apiclient.ErrForbidden):
		return nil, fatal(fmt.Errorf("%w: tunnelclient: %v", ErrRefused, err))
	case errors.As(err, &se) && (se.Status == 429 || se.Status >= 500):
		return nil, fmt.Errorf("tunnelclient: %w", err)
	case se != nil:
		return nil, fatal(fmt.Errorf("tunnelclient: %w", err))
	default: // transport or a malformed answer: retried
		return nil, fmt.Errorf("tunnelclient: %w", err)
	}
	if tok := apiclient.AccessToken(t, tunnelproto.ScopeConnect); tok != "" {
		c.mu.Lock()
		c.token = tok
		c.mu.Unlock()
	}
	return t, nil
}

func (c *Client) currentToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func relayEndpoint(t *tunnelproto.Tunnel) (*tunnelproto.TunnelEndpoint, bool) {
	var found *tunnelproto.TunnelEndpoint
	n := 0
	for i := range t.Endpoints {
		if t.Endpoints[i].ClientRelayURI != "" {
			found = &t.Endpoints[i]
			n++
		}
	}
	return found, n == 1
}

// runOnce makes one connection attempt and, if it connects, serves the
// session until it ends. connected reports whether a session came up.
func (c *Client) runOnce(ctx context.Context, first bool) (connected bool, err error) {
	noHost := func() error {
		if first {
			return fatal(ErrNoHost)
		}
		return errNoHostYet
	}
	t, err := c.getTunnel(ctx)
	if err != nil {
		return false, err
	}
	ep, ok := relayEndpoint(t)
	if !ok {
		return false, noHost()
	}
	refreshed := false
	var conn *wsconn.Conn
	for {
		conn, err = tunnelrelay.Dial(ctx, tunnelrelay.DialConfig{
			URL: ep.ClientRelayURI, Side: tunnelrelay.ClientSide, Mode: c.cfg.Mode, Token: c.currentToken(),
			HTTPClient: c.wsc, HandshakeTimeout: tunnelrelay.UpgradeTimeout,
		})
		if err == nil {
			break
		}
		var refused *tunnelrelay.RefusedError
		var badProto *tunnelrelay.SubprotocolError
		switch {
		case errors.As(err, &badProto):
			return false, fatal(fmt.Errorf("tunnelclient: %w", badProto))
		case !errors.As(err, &refused):
			return false, fmt.Errorf("tunnelclient: relay upgrade: %w", err)
		}
		se := fmt.Errorf("tunnelclient: %w", &apiclient.StatusError{Op: "relay upgrade", Status: refused.Status})
		switch refused.Status {
		case http.StatusUnauthorized:
			if refreshed || c.cfg.APIKey == "" {
				return false, fatal(fmt.Errorf("%w: %v", ErrRefused, se))
			}
			c.log.Info("relay refused the connect token; refreshing it")
			refreshed = true
			if t, err = c.getTunnel(ctx); err != nil {
				return false, err
			}
			if ep, ok = relayEndpoint(t); !ok {
				return false, noHost()
			}
			continue
		case http.StatusForbidden:
			return false, fatal(fmt.Errorf("%w: %v", ErrRefused, se))
		case http.StatusNotFound:
			return false, noHost()
		case 429, 502, 503, 500, 504:
			return false, se
		default:
			return false, fatal(se)
		}
	}
	proto := conn.Subprotocol()
	return c.serveSession(ctx, conn, proto, ep)
}
