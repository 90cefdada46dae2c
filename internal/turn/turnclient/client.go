package turnclient

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
	"github.com/xtaci/smux"
)

// Client runs the workers of one tunnel-client turn session.
type Client struct {
	cfg       Config
	log       *slog.Logger
	m         *overlaymetrics.Metrics
	sessionID string
	peer      net.Addr
	dtlsOpts  []dtls.ClientOption
	hs        chan struct{} // handshake slots

	resMu sync.Mutex
	res   *turnprovider.Resolution

	workers []*worker
	router  *router
	local   net.PacketConn // udp ingress

	poolMu  sync.Mutex
	pool    []*session // tcp ingress: live smux sessions
	poolRR  atomic.Uint64
	firstUp chan struct{}
	upOnce  sync.Once

	rotations atomic.Int64 // credential rotations done (for tests)

	readyMu    sync.Mutex
	readyCount int
	everReady  map[int]bool
	allReady   bool

	obs observer // what Snapshot reports (observe.go)
}

// New checks cfg (stage policy_validate) and prepares a client.
func New(cfg Config, log *slog.Logger) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var sid [16]byte
	crand.Read(sid[:])
	c := &Client{cfg: cfg, sessionID: hex.EncodeToString(sid[:]), hs: make(chan struct{}, cfg.MaxHandshakes),
		router: newRouter(cfg.PeerIdle), firstUp: make(chan struct{}), everReady: map[int]bool{}}
	c.log = log.With("runtime", "client", "session_id", c.sessionID)
	c.m = overlaymetrics.New(cfg.Registry, overlaymetrics.Labels{Runtime: "client", Provider: cfg.Provider, TURNMode: cfg.turnMode(), PeerMode: "dtls"})
	c.m.Touch(overlaymetrics.LocalToRelay, overlaymetrics.RelayToLocal)
	opts, err := turndial.ClientOptions(cfg.profile())
	if err != nil {
		return nil, overlay.Wrap(overlay.StagePeerSetup, err)
	}
	c.dtlsOpts = opts
	return c, nil
}

// SessionID is the 32-hex id every log event carries.
func (c *Client) SessionID() string { return c.sessionID }

// RunUDP runs the udp overlay for datagrams arriving on local until ctx is
// done (nil) or the session fails (a *overlay.StageError).
func (c *Client) RunUDP(ctx context.Context, local net.PacketConn) error {
	if c.cfg.Ingress != "udp" {
		return overlay.Errorf(overlay.StagePolicyValidate, "RunUDP with ingress %q", c.cfg.Ingress)
	}
	c.local = local
	return c.run(ctx, func(ctx context.Context) error { return c.readLocal(ctx) })
}

// RunTCP runs the tcp overlay. listen is called once the first session is
// up (so clients are not accepted before they can be served); its error is
// a local_bind failure.
func (c *Client) RunTCP(ctx context.Context, listen func(context.Context) (net.Listener, error)) error {
	if c.cfg.Ingress != "tcp" {
		return overlay.Errorf(overlay.StagePolicyValidate, "RunTCP with ingress %q", c.cfg.Ingress)
	}
	return c.run(ctx, func(ctx context.Context) error {
		select {
		case <-ctx.Done():
			return nil
		case <-c.firstUp:
		}
		ln, err := listen(ctx)
		if err != nil {
			return overlay.Wrap(overlay.StageLocalBind, err)
		}
		return c.acceptLocal(ctx, ln)
	})
}

func (c *Client) run(ctx context.Context, dispatch func(context.Context) error) (err error) {
	c.m.SessionStarts.Inc()
	c.log.Info("starting", "event", "runtime_startup", "stage", overlay.StagePolicyValidate, "result", "started",
		"provider", c.cfg.Provider, "turn_mode", c.cfg.turnMode(), "ingress", c.cfg.Ingress, "connections", c.cfg.Connections,
		"profile", c.cfg.profile().Name())
	defer func() {
		if err != nil {
			stage := overlay.StageOf(err)
			c.m.SessionFailures.WithLabelValues(stage).Inc()
			c.log.Error("session failed", "event", "runtime_failure", "stage", stage, "result", "failed", "err", err)
			c.emit(Event{Kind: EventRuntimeFailure, Stage: stage, Result: "failed", Worker: -1, Err: err})
		} else {
			c.log.Info("stopped", "event", "runtime_stop", "stage", overlay.StageShutdown, "result", "stopped")
			c.emit(Event{Kind: EventRuntimeStop, Stage: overlay.StageShutdown, Result: "stopped", Worker: -1})
		}
	}()
	if _, err := c.credentials(ctx); err != nil {
		c.m.StartupFailures.WithLabelValues(overlay.StageProviderResolve).Inc()
		return err
	}
	peer, err := net.ResolveUDPAddr("udp", c.cfg.Peer)
	if err != nil {
		c.m.StartupFailures.WithLabelValues(overlay.StagePeerSetup).Inc()
		return overlay.Errorf(overlay.StagePeerSetup, "resolve peer %s: %w", c.cfg.Peer, err)
	}
	c.peer = peer

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	failSession := func(err error) {
		once.Do(func() { firstErr = err; cancel(err) })
	}
	for i := range c.cfg.Connections {
		w := &worker{id: i, out: make(chan []byte, c.cfg.QueueSize)}
		c.workers = append(c.workers, w)
	}
	for _, w := range c.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if !sleepCtx(ctx, time.Duration(w.id)*c.cfg.WorkerSpacing) {
				return
			}
			if err := c.supervise(ctx, w); err != nil && ctx.Err() == nil {
				failSession(err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := dispatch(ctx); err != nil && ctx.Err() == nil {
			failSession(err)
		}
	}()
	if c.cfg.Ingress == "udp" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.expireLoop(ctx)
		}()
		for _, w := range c.workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.sendLoop(ctx, w)
			}()
		}
	}
	<-ctx.Done()
	if c.local != nil {
		// Unblock readLocal.
		c.local.SetReadDeadline(time.Now())
	}
	wg.Wait()
	return firstErr
}

// credentials returns the current resolution, re-resolving it when it is
// past 80 % of its TTL.
func (c *Client) credentials(ctx context.Context) (*turnprovider.Resolution, error) {
	c.resMu.Lock()
	defer c.resMu.Unlock()
	if c.res != nil && !c.res.Stale(time.Now()) {
		return c.res, nil
	}
	c.emit(Event{Kind: EventProviderResolution, Stage: overlay.StageProviderResolve, Result: "started", Worker: -1})
	res, err := turnprovider.Resolve(ctx, c.cfg.Provider, turnprovider.Request{Link: c.cfg.Link, RESTSecret: c.cfg.RESTSecret, Solver: c.cfg.Solver})
	if err == nil {
		err = res.Override(c.cfg.TURNHost, c.cfg.TURNPort)
	}
	if err != nil {
		c.log.Warn("provider resolution failed", "event", "provider_resolution", "stage", overlay.StageProviderResolve, "result", "failed", "err", err)
		stage := overlay.StageProviderResolve
		if errors.Is(err, turnprovider.ErrMissingSecret) {
			stage = overlay.StagePolicyValidate
		}
		c.emit(Event{Kind: EventProviderResolution, Stage: stage, Result: "failed", Worker: -1, Err: err})
		return nil, overlay.Wrap(stage, err)
	}
	c.res = res
	c.emit(Event{Kind: EventProviderResolution, Stage: overlay.StageProviderResolve, Result: "succeeded", Worker: -1})
	c.log.Info("provider resolved", "event", "provider_resolution", "stage", overlay.StageProviderResolve, "result", "succeeded",
		"provider", res.Provider, "turn_addr", res.Address, "ttl", res.TTL)
	return res, nil
}

func (c *Client) markReady(w *worker) {
	c.readyMu.Lock()
	if !c.everReady[w.id] {
		c.everReady[w.id] = true
		c.readyCount++
	}
	all := !c.allReady && c.readyCount == len(c.workers)
	if all {
		c.allReady = true
	}
	c.readyMu.Unlock()
	if all {
		c.log.Info("all workers ready", "event", "runtime_ready", "stage", overlay.StageForwardingLoop, "result", "ready", "workers", len(c.workers))
		c.emit(Event{Kind: EventRuntimeReady, Stage: overlay.StageForwardingLoop, Result: "ready", Worker: -1})
		if c.cfg.OnReady != nil {
			c.cfg.OnReady()
		}
	}
}

// supervise runs w, restarting it after failures per docs/protocols/turn-overlay.md §3.2.
func (c *Client) supervise(ctx context.Context, w *worker) error {
	budget := c.cfg.RestartBudget
	delays := c.cfg.restartBackoff()
	everReady := false
	for {
		readyAt, err := c.runWorker(ctx, w)
		if ctx.Err() != nil {
			return nil
		}
		if readyAt.IsZero() && !everReady {
			// Upstream rule: failing before the first ready fails the session.
			c.m.StartupFailures.WithLabelValues(overlay.StageOf(err)).Inc()
			return fmt.Errorf("worker %d: %w", w.id, err)
		}
		if !readyAt.IsZero() {
			everReady = true
			if time.Since(readyAt) >= c.cfg.BudgetRefill {
				budget = c.cfg.RestartBudget
				delays.Reset()
			}
		}
		if err == nil {
			return overlay.Errorf(overlay.StageSessionSupervision, "worker %d stopped without an error", w.id)
		}
		stage := overlay.StageOf(err)
		if stage != "" {
			c.m.TransportFailure.WithLabelValues(stage).Inc()
		}
		if budget <= 0 {
			// Built by hand, not with overlay.Errorf: the last error keeps
			// its own stage inside, but the session failed at supervision.
			return &overlay.StageError{Stage: overlay.StageSessionSupervision,
				Err: fmt.Errorf("worker %d: restart budget of %d exhausted, last error: %w", w.id, c.cfg.RestartBudget, err)}
		}
		budget--
		d := delays.Next()
		c.log.Warn("worker restart scheduled", "event", "worker_restart_scheduled", "stage", stage, "result", "retrying",
			"worker", w.id, "delay", d.Round(time.Millisecond), "budget_left", budget, "err", err)
		c.emit(Event{Kind: EventWorkerRestart, Stage: stage, Result: "retrying", Worker: w.id, Delay: d, BudgetLeft: budget, Err: err})
		if !sleepCtx(ctx, d) {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// runWorker connects w and forwards until its session dies. readyAt is when
// it became ready (zero if it never did).
func (c *Client) runWorker(ctx context.Context, w *worker) (readyAt time.Time, err error) {
	s, err := c.connect(ctx, w)
	if err != nil {
		return time.Time{}, err
	}
	readyAt = time.Now()
	c.install(w, s)
	c.m.ActiveWorkers.Inc()
	c.log.Info("worker ready", "event", "worker_ready", "stage", overlay.StageDTLSHandshake, "result", "ready",
		"worker", w.id, "relay", s.relayAddr, "framing", s.framing())
	c.emit(Event{Kind: EventWorkerReady, Stage: overlay.StageDTLSHandshake, Result: "ready", Worker: w.id, Relay: s.relayAddr})
	c.markReady(w)
	defer func() {
		c.m.ActiveWorkers.Dec()
		c.uninstall(w, s)
		s.close()
	}()
	for {
		var rotate <-chan time.Time
		var t *time.Timer
		if at := s.res.RefreshAt(); !at.IsZero() {
			// Stagger rotations so the workers do not all reconnect at once.
			t = time.NewTimer(time.Until(at) + time.Duration(w.id)*c.cfg.WorkerSpacing)
			rotate = t.C
		}
		stopTimer := func() {
			if t != nil {
				t.Stop()
			}
		}
		select {
		case <-ctx.Done():
			stopTimer()
			return readyAt, nil
		case <-s.dead:
			stopTimer()
			return readyAt, s.err()
		case <-rotate:
			// Make before break: the new session is up before the old one goes.
			ns, err := c.connect(ctx, w)
			if err != nil {
				return readyAt, err
			}
			c.log.Info("worker credentials rotated", "event", "worker_ready", "stage", overlay.StageProviderResolve, "result", "ready",
				"worker", w.id, "relay", ns.relayAddr)
			c.emit(Event{Kind: EventWorkerRotated, Stage: overlay.StageProviderResolve, Result: "ready", Worker: w.id, Relay: ns.relayAddr})
			c.rotations.Add(1)
			old := s
			s = ns
			c.install(w, s)
			c.retire(w, old)
		}
	}
}

// install makes s the worker's live session.
func (c *Client) install(w *worker, s *session) {
	if c.cfg.Ingress == "udp" {
		w.cur.Store(s)
		go c.receiveLoop(w, s)
		c.router.up(w, s.framed)
		return
	}
	c.poolMu.Lock()
	c.pool = append(c.pool, s)
	c.poolMu.Unlock()
	c.upOnce.Do(func() { close(c.firstUp) })
}

func (c *Client) uninstall(w *worker, s *session) {
	if c.cfg.Ingress == "udp" {
		if w.cur.CompareAndSwap(s, nil) {
			c.router.down(w)
		}
		return
	}
	c.poolMu.Lock()
	for i, p := range c.pool {
		if p == s {
			c.pool = append(c.pool[:i], c.pool[i+1:]...)
			break
		}
	}
	c.poolMu.Unlock()
}

// retire takes a rotated-out session out of service. A udp session closes
// at once (its worker already sends on the new one); a tcp session keeps
// its open streams until they end.
func (c *Client) retire(w *worker, s *session) {
	if c.cfg.Ingress == "udp" {
		s.close()
		return
	}
	c.uninstall(w, s)
	go func() {
		deadline := time.Now().Add(max(s.res.TTL/5, time.Minute))
		for s.mux != nil && s.mux.NumStreams() > 0 && time.Now().Before(deadline) {
			select {
			case <-s.dead:
				return
			case <-time.After(time.Second):
			}
		}
		s.close()
	}()
}

// worker is one slot: a TURN allocation plus DTLS session, replaced on restart.
type worker struct {
	id  int
	out chan []byte
	cur atomic.Pointer[session]
}

// session is one TURN allocation with its DTLS session (and, for tcp
// ingress, KCP+smux on top).
type session struct {
	res       *turnprovider.Resolution
	alloc     *turndial.Allocation
	relayAddr string
	dtls      *dtls.Conn
	mux       *smux.Session
	framed    bool // negotiated overlay.ALPNFramedUDP: records carry peer ids

	dead      chan struct{}
	deadOnce  sync.Once
	errMu     sync.Mutex
	failure   error
	closeOnce sync.Once
}

// framing names the udp overlay framing of s for logs.
func (s *session) framing() string {
	if s.framed {
		return "peer-id"
	}
	return "raw"
}

func (s *session) fail(err error) {
	s.errMu.Lock()
	if s.failure == nil {
		s.failure = err
	}
	s.errMu.Unlock()
	s.deadOnce.Do(func() { close(s.dead) })
}

func (s *session) err() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.failure == nil {
		return overlay.Errorf(overlay.StageForwardingLoop, "session closed")
	}
	return s.failure
}

func (s *session) close() {
	s.closeOnce.Do(func() {
		s.fail(overlay.Errorf(overlay.StageForwardingLoop, "session closed"))
		if s.mux != nil {
			s.mux.Close()
		}
		if s.dtls != nil {
			s.dtls.Close()
		}
		if s.alloc != nil {
			s.alloc.Close()
		}
	})
}

// watchedConn reports the TURN leg's read errors: when the TURN server
// drops us (TCP reset, closed socket) the session is dead.
type watchedConn struct {
	net.PacketConn
	s *session
}

func (w *watchedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, a, err := w.PacketConn.ReadFrom(b)
	if err != nil {
		w.s.fail(overlay.Errorf(overlay.StageForwardingLoop, "TURN connection lost: %w", err))
	}
	return n, a, err
}

// connect builds one session: TURN dial → allocate → DTLS handshake (→ KCP+smux).
func (c *Client) connect(ctx context.Context, w *worker) (_ *session, err error) {
	res, err := c.credentials(ctx)
	if err != nil {
		return nil, err
	}
	s := &session{res: res, dead: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	tcfg := c.cfg.turnConfig(res)
	c.workerStage(w, overlay.StageTURNDial)
	conn, err := turndial.Dial(ctx, tcfg)
	if err != nil {
		return nil, overlay.Wrap(overlay.StageTURNDial, err)
	}
	c.workerStage(w, overlay.StageTURNAllocate)
	alloc, err := turndial.Allocate(ctx, &watchedConn{PacketConn: conn, s: s}, tcfg)
	if err != nil {
		return nil, overlay.Wrap(overlay.StageTURNAllocate, err)
	}
	s.alloc = alloc
	s.relayAddr = alloc.RelayAddr()

	select {
	case c.hs <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c.workerStage(w, overlay.StageDTLSHandshake)
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	dc, err := turndial.Handshake(hctx, alloc.Relay, c.peer, c.dtlsOpts)
	cancel()
	<-c.hs
	if err != nil {
		err = turndial.ExplainHandshake(err, c.cfg.profile())
		return nil, overlay.Errorf(overlay.StageDTLSHandshake, "handshake with %s via relay %s: %w", c.cfg.Peer, s.relayAddr, err)
	}
	s.dtls = dc
	if st, ok := dc.ConnectionState(); ok {
		s.framed = st.NegotiatedProtocol == overlay.ALPNFramedUDP
	}
	if c.cfg.Ingress == "tcp" {
		k, err := overlay.DialKCP(dc)
		if err != nil {
			return nil, overlay.Errorf(overlay.StagePeerSetup, "kcp: %w", err)
		}
		mux, err := smux.Client(k, overlay.SmuxConfig())
		if err != nil {
			k.Close()
			return nil, overlay.Errorf(overlay.StagePeerSetup, "smux: %w", err)
		}
		s.mux = mux
		go func() {
			<-mux.CloseChan()
			k.Close()
			s.fail(overlay.Errorf(overlay.StageForwardingLoop, "smux session closed"))
		}()
	}
	go c.watchAllocation(s)
	return s, nil
}

// allocationProbeAttempts is how many CreatePermission tries one check
// makes before giving up. The second try absorbs a stale nonce (pion
// updates the nonce but returns the 438 to the caller) and a transaction
// lost to packet loss; an error response other than that is final.
const allocationProbeAttempts = 2

// watchAllocation checks every cfg.AllocationCheck that the TURN server
// still holds s's allocation, and fails s when it does not. pion's client
// refreshes the allocation and permissions on its own timers but only logs
// a failure: the relay conn stays open and writes keep succeeding, so over
// UDP nothing else would ever notice a server that lost the allocation.
func (c *Client) watchAllocation(s *session) {
	t := time.NewTicker(c.cfg.AllocationCheck)
	defer t.Stop()
	for {
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
		if err := c.checkAllocation(s); err != nil {
			s.fail(err)
			return
		}
		c.m.AllocationChecks.Inc()
	}
}

// checkAllocation refreshes the permission for the peer. That request is
// authenticated and bound to the allocation's 5-tuple, so it fails (437
// Allocation Mismatch from coturn, silence from pion) when the server no
// longer has the allocation, and it has no side effect when it does: the
// permission exists since the DTLS handshake and pion refreshes it anyway.
func (c *Client) checkAllocation(s *session) error {
	var err error
	for range allocationProbeAttempts {
		if err = s.alloc.CreatePermission(c.peer); err == nil {
			return nil
		}
		select {
		case <-s.dead:
			return nil // closed under us: not a finding
		default:
		}
		var re *turndial.ResponseError
		if errors.As(err, &re) {
			return overlay.Errorf(overlay.StageTURNAllocate, "TURN server %s no longer holds allocation %s: %w", s.res.Address, s.relayAddr, err)
		}
	}
	return overlay.Errorf(overlay.StageForwardingLoop, "TURN server %s does not answer the check of allocation %s: %w", s.res.Address, s.relayAddr, err)
}
