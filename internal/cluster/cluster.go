package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/metrics"
	"github.com/warrenhq/warren/internal/store"
)

// Defaults for the zero values of Config.
const (
	DefaultNodeID = "local"
	DefaultLease  = 15 * time.Second
)

// Config configures a Member.
type Config struct {
	// Store holds the registry. Required.
	Store store.Store
	// NodeID names this node; stable across restarts. Default
	// DefaultNodeID.
	NodeID string
	// InternalURL is where other nodes reach this one. Default "".
	InternalURL string
	// PublicURL is where clients reach this node. Default "".
	PublicURL string
	// Lease is how long the node counts as alive after a renewal.
	// Default DefaultLease.
	Lease time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Registerer receives the warren_cluster_* metrics. Optional.
	Registerer prometheus.Registerer
}

// Member is this node's membership. Register it, then Run it.
type Member struct {
	cfg Config
	log *slog.Logger
	m   *memberMetrics

	mu       sync.Mutex
	instance string
	heldFrom time.Time // start of the current unbroken run of renewals; zero: not held
	lastErr  error     // last store failure; nil when the last round succeeded
	ready    atomic.Bool
}

// New builds a Member; it touches nothing until Register.
func New(cfg Config, log *slog.Logger) (*Member, error) {
	if cfg.Store == nil {
		return nil, errors.New("cluster: Store is required")
	}
	if cfg.NodeID == "" {
		cfg.NodeID = DefaultNodeID
	}
	if cfg.Lease <= 0 {
		cfg.Lease = DefaultLease
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Member{cfg: cfg, log: log.With("node", cfg.NodeID), m: newMetrics(cfg.Registerer)}
	return m, nil
}

// NodeID is this node's ID.
func (m *Member) NodeID() string { return m.cfg.NodeID }

// Lease is the configured lease.
func (m *Member) Lease() time.Duration { return m.cfg.Lease }

// Ready reports whether the last round found the store answering, its
// schema current and the lease held.
func (m *Member) Ready() bool { return m.ready.Load() }

// Err is the last store failure, nil when the last round succeeded.
func (m *Member) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

func newInstance() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Register registers this node under a new instance, releasing what an
// earlier process with its ID left behind.
func (m *Member) Register(ctx context.Context) error {
	if err := m.cfg.Store.Check(ctx); err != nil {
		m.fail(err)
		return err
	}
	now := m.cfg.Now()
	n := &store.Node{ID: m.cfg.NodeID, Instance: newInstance(), InternalURL: m.cfg.InternalURL,
		PublicURL: m.cfg.PublicURL, Started: now, Renewed: now, Expires: now.Add(m.cfg.Lease)}
	released, err := m.cfg.Store.RegisterNode(ctx, n)
	if err != nil {
		m.fail(err)
		return fmt.Errorf("cluster: register node %q: %w", m.cfg.NodeID, err)
	}
	m.m.released(released)
	if released != (store.Holdings{}) {
		m.log.Info("released what an earlier process of this node held", "endpoints", released.Endpoints,
			"wings", released.Wings, "tickets", released.Tickets)
	}
	m.mu.Lock()
	m.instance, m.heldFrom, m.lastErr = n.Instance, now, nil
	m.mu.Unlock()
	m.ready.Store(true)
	m.m.up.Set(1)
	m.log.Info("node registered", "lease", m.cfg.Lease, "internal_url", m.cfg.InternalURL)
	return nil
}

func (m *Member) fail(err error) {
	m.mu.Lock()
	m.lastErr, m.heldFrom = err, time.Time{}
	m.mu.Unlock()
	m.ready.Store(false)
	m.m.up.Set(0)
}

// Run renews the lease and reaps dead nodes until ctx ends, then
// deregisters the node (releasing what it holds) within a few seconds. It
// registers first if Register has not succeeded.
func (m *Member) Run(ctx context.Context) error {
	renew := time.NewTicker(m.cfg.Lease / 3)
	defer renew.Stop()
	reap := time.NewTicker(m.cfg.Lease / 2)
	defer reap.Stop()
	for {
		select {
		case <-ctx.Done():
			m.deregister()
			return nil
		case <-renew.C:
			m.renew(ctx)
		case <-reap.C:
			m.reap(ctx)
		}
	}
}

// renew renews the lease (registering again if it was lost or never held)
// and checks the schema.
func (m *Member) renew(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/3)
	defer cancel()
	m.mu.Lock()
	instance := m.instance
	m.mu.Unlock()
	if instance == "" {
		if err := m.Register(ctx); err != nil {
			m.m.failures.Inc()
			m.log.Warn("node registration failed; not ready", "err", err)
		}
		return
	}
	now := m.cfg.Now()
	err := m.cfg.Store.Check(ctx)
	if err == nil {
		err = m.cfg.Store.RenewNode(ctx, m.cfg.NodeID, instance, now, now.Add(m.cfg.Lease))
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Reaped while cut off, or another process took the ID.
		m.m.lost.Inc()
		m.log.Error("lease lost: this node was reaped or another process registered its ID; registering again", "err", err)
		m.mu.Lock()
		m.instance = ""
		m.mu.Unlock()
		m.fail(err)
		if err := m.Register(ctx); err != nil {
			m.m.failures.Inc()
			m.log.Warn("node registration failed; not ready", "err", err)
		}
	case err != nil:
		m.m.failures.Inc()
		if m.Ready() {
			m.log.Warn("lease renewal failed; not ready", "err", err)
		}
		m.fail(err)
	default:
		m.m.renewals.Inc()
		m.mu.Lock()
		recovered := m.lastErr != nil
		if m.heldFrom.IsZero() {
			m.heldFrom = now
		}
		m.lastErr = nil
		m.mu.Unlock()
		if recovered {
			m.log.Info("store reachable again; ready")
		}
		m.ready.Store(true)
		m.m.up.Set(1)
	}
}

// reap releases dead nodes, once this node has held its lease for a whole
// lease (see the package documentation).
func (m *Member) reap(ctx context.Context) {
	m.mu.Lock()
	held := !m.heldFrom.IsZero() && m.cfg.Now().Sub(m.heldFrom) >= m.cfg.Lease
	m.mu.Unlock()
	if !held {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Lease/2)
	defer cancel()
	ids, released, err := m.cfg.Store.ReapNodes(ctx, m.cfg.Now())
	if err != nil {
		m.log.Warn("reaping dead nodes failed", "err", err)
		return
	}
	m.m.reaped.Add(float64(len(ids)))
	m.m.released(released)
	if len(ids) > 0 || released != (store.Holdings{}) {
		m.log.Warn("released dead nodes", "nodes", ids, "endpoints", released.Endpoints,
			"wings", released.Wings, "tickets", released.Tickets)
	}
	if ns, err := m.cfg.Store.ListNodes(ctx); err == nil {
		now := m.cfg.Now()
		alive := 0
		for _, n := range ns {
			if n.Expires.After(now) {
				alive++
			}
		}
		m.m.alive.Set(float64(alive))
	}
}

func (m *Member) deregister() {
	m.mu.Lock()
	instance := m.instance
	m.instance = ""
	m.mu.Unlock()
	m.ready.Store(false)
	if instance == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	released, err := m.cfg.Store.DeregisterNode(ctx, m.cfg.NodeID, instance)
	if err != nil {
		m.log.Warn("node deregistration failed; other nodes release it when its lease ends", "err", err)
		return
	}
	m.m.released(released)
	m.log.Info("node deregistered")
}

// NodeStatus is one node as `relay-server cluster status` shows it.
type NodeStatus struct {
	ID          string         `json:"id"`
	Instance    string         `json:"instance,omitempty"`
	InternalURL string         `json:"internal_url,omitempty"`
	PublicURL   string         `json:"public_url,omitempty"`
	Started     *time.Time     `json:"started,omitempty"`
	Renewed     *time.Time     `json:"renewed,omitempty"`
	Expires     *time.Time     `json:"expires,omitempty"`
	Alive       bool           `json:"alive"`
	Registered  bool           `json:"registered"` // false: records left by a node no longer registered
	Self        bool           `json:"self"`
	Holds       store.Holdings `json:"holds"`
}

// Status is the cluster as this node sees it in the store.
type Status struct {
	Self  string       `json:"self"`
	Lease string       `json:"lease"`
	At    time.Time    `json:"at"`
	Nodes []NodeStatus `json:"nodes"`
}

// Status reads the registry and what each node holds.
func (m *Member) Status(ctx context.Context) (*Status, error) {
	ns, err := m.cfg.Store.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	holds, err := m.cfg.Store.NodeHoldings(ctx)
	if err != nil {
		return nil, err
	}
	now := m.cfg.Now()
	st := &Status{Self: m.cfg.NodeID, Lease: m.cfg.Lease.String(), At: now.UTC(), Nodes: []NodeStatus{}}
	for _, n := range ns {
		st.Nodes = append(st.Nodes, NodeStatus{
			ID: n.ID, Instance: n.Instance, InternalURL: n.InternalURL, PublicURL: n.PublicURL,
			Started: &n.Started, Renewed: &n.Renewed, Expires: &n.Expires,
			Alive: n.Expires.After(now), Registered: true, Self: n.ID == m.cfg.NodeID, Holds: holds[n.ID],
		})
		delete(holds, n.ID)
	}
	for id, h := range holds {
		st.Nodes = append(st.Nodes, NodeStatus{ID: id, Holds: h, Self: id == m.cfg.NodeID})
	}
	return st, nil
}

type memberMetrics struct {
	up, alive                        prometheus.Gauge
	renewals, failures, lost, reaped prometheus.Counter
	releasedVec                      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *memberMetrics {
	ns, sub := metrics.Namespace, "cluster"
	m := &memberMetrics{
		up: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "store_up",
			Help: "1 while this node's last lease round reached the store with a current schema, else 0."}),
		alive: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "nodes_alive",
			Help: "Registered nodes whose lease had not ended at this node's last reap."}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_renewals_total",
			Help: "Lease renewals that succeeded."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_failures_total",
			Help: "Lease renewals or registrations that failed (store unreachable, schema not current)."}),
		lost: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "lease_lost_total",
			Help: "Renewals that found this node reaped or superseded by another process with its ID."}),
		reaped: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "nodes_reaped_total",
			Help: "Dead nodes this node deleted from the registry."}),
		releasedVec: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "released_records_total",
			Help: "Records of dead, restarted or stopped nodes this node released, by kind."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.up, m.alive, m.renewals, m.failures, m.lost, m.reaped, m.releasedVec)
	}
	return m
}

func (m *memberMetrics) released(h store.Holdings) {
	m.releasedVec.WithLabelValues("endpoint").Add(float64(h.Endpoints))
	m.releasedVec.WithLabelValues("wing").Add(float64(h.Wings))
	m.releasedVec.WithLabelValues("ticket").Add(float64(h.Tickets))
}
