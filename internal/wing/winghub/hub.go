package winghub

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// WingIdentity is what a valid wing token says.
type WingIdentity struct {
	UserID string // owner
	WingID string // bound machine id, "" for any
	Pub    string // bound X25519 key, "" for none
}

// UserIdentity is what a valid user token says.
type UserIdentity struct {
	UserID      string
	Email       string
	DisplayName string
}

// Config configures a Hub.
type Config struct {
	// VerifyWing checks a wing token. Required.
	VerifyWing func(tok string) (WingIdentity, error)
	// VerifyUser checks a user token. Required.
	VerifyUser func(tok string) (UserIdentity, error)
	// Registerer receives the hub's metrics. Optional.
	Registerer prometheus.Registerer
	// HeartbeatTimeout closes a wing silent for this long. Default 90s
	// (three missed 30 s heartbeats).
	HeartbeatTimeout time.Duration
	// RegisterTimeout bounds the wait for wing.register. Default 10s.
	RegisterTimeout time.Duration
	// TunnelTimeout drops a request_id mapping with no reply frame for this
	// long. Default 120s.
	TunnelTimeout time.Duration
	// Bandwidth caps what each user receives of PTY output. Default off.
	Bandwidth Bandwidth
	// Usage keeps the bandwidth usage across restarts. Default none (in
	// memory only). Loaded at New; charges are written every UsageFlush
	// (default 10s) and when the hub closes.
	Usage      UsageStore
	UsageFlush time.Duration
	// RelayPubKey is sent in registered.relay_pub_key. Default "".
	RelayPubKey string
	// WriteTimeout bounds one write to a wing or user socket; a socket
	// that takes no frame for this long is closed. Default 5s.
	WriteTimeout time.Duration
	// BrowserQueueBytes bounds the frames waiting to be written to one
	// user socket; a socket that falls this far behind is closed (it
	// reattaches and gets a replay). Default DefaultBrowserQueueBytes
	// (8 MiB), at least wp.MaxFrame.
	BrowserQueueBytes int
	// ICE is handed to wings (registered) and users (GET /api/app/ice)
	// for direct sessions. Default: no servers (host candidates only).
	ICE ICE
	// Owners records who owns each wing id: the user whose wing first
	// registered it. Default: kept in memory for the hub's lifetime.
	Owners WingOwners
	// WingUp, if set, is called when a wing has registered here, before
	// it is told so; an error refuses the registration (the wing retries).
	// A clustered relay records the wing's node there (see cluster.go).
	// Optional.
	WingUp func(ctx context.Context, wingID string) error
	// WingDown, if set, is called when the wing's current connection here
	// ends. Optional.
	WingDown func(wingID string)
}

// Hub is the wing hub. Mount it with Register.
type Hub struct {
	cfg Config
	log *slog.Logger
	m   *hubMetrics
	bw  *meter // nil: no bandwidth limits

	usageFlushErrors prometheus.Counter
	usageDone        chan struct{} // closed when the last usage flush is done

	mu       sync.Mutex
	wings    map[string]*wingConn  // by machine wing_id
	browsers map[*browserConn]bool // every live user socket
	routes   map[string]*route     // by session_id
	tunnels  map[string]*tunnelMap // by request_id
	nonces   map[string]time.Time  // session.attention dedupe
	closing  bool
	done     chan struct{}
	stopOnce sync.Once
}

type conn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (c *conn) send(ctx context.Context, b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
}

// defaultWriteTimeout is Config.WriteTimeout's default.
const defaultWriteTimeout = 5 * time.Second

// New returns a Hub. Call Close (or Shutdown) when done.
func New(cfg Config, log *slog.Logger) (*Hub, error) {
	if cfg.VerifyWing == nil || cfg.VerifyUser == nil {
		return nil, errors.New("winghub: VerifyWing and VerifyUser are required")
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = defaultWriteTimeout
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 90 * time.Second
	}
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = 10 * time.Second
	}
	if cfg.TunnelTimeout <= 0 {
		cfg.TunnelTimeout = 120 * time.Second
	}
	if cfg.BrowserQueueBytes <= 0 {
		cfg.BrowserQueueBytes = DefaultBrowserQueueBytes
	}
	cfg.BrowserQueueBytes = max(cfg.BrowserQueueBytes, wp.MaxFrame)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Owners == nil {
		cfg.Owners = &memOwners{owners: map[string]string{}}
	}
	h := &Hub{cfg: cfg, log: log, m: newMetrics(cfg.Registerer),
		wings: map[string]*wingConn{}, browsers: map[*browserConn]bool{}, routes: map[string]*route{},
		tunnels: map[string]*tunnelMap{}, nonces: map[string]time.Time{}, done: make(chan struct{})}
	if cfg.Bandwidth.on() {
		h.bw = newMeter(cfg.Bandwidth)
	}
	h.startUsage()
	go h.reaper()
	return h, nil
}

// Stats is a snapshot for tests and debugging.
type Stats struct{ Wings, Users, Routes, Tunnels int }

// Stats returns current counts.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{len(h.wings), len(h.browsers), len(h.routes), len(h.tunnels)}
}

func newShortID() string { return uuid.NewString()[:8] }
