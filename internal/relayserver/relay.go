package relayserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/buildinfo"
	"github.com/warrenhq/warren/internal/cluster"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelapi"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/devtunnels/webforward"
	"github.com/warrenhq/warren/internal/metrics"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/ticket"
	"github.com/warrenhq/warren/internal/wing/winghub"
	"github.com/warrenhq/warren/internal/wing/wingtoken"
)

// Config configures a relay Server.
type Config struct {
	// AdminKey authenticates the management API. Required.
	AdminKey string
	// Tickets configures the ticket byte relay; its Authorize is set by the
	// Server. Ignored when TicketsDisabled.
	Tickets ticket.Config
	// TicketsDisabled answers 404 on every ticket route. Default false.
	TicketsDisabled bool
	// ShutdownTimeout bounds the drain when Serve's context ends. Default 10s.
	ShutdownTimeout time.Duration
	// Registry receives the relay's metrics and is served on /metrics.
	// Default: a new registry from metrics.NewRegistry.
	Registry *prometheus.Registry
	// Store keeps API keys, signing keys, tunnels and wing owners.
	// Required. The caller opens and closes it.
	Store store.Store
	// PublicURL is the base URL clients reach this relay at; it is the
	// issuer of tunnel tokens. Required.
	PublicURL string
	// TokenTTL is the lifetime of tunnel access tokens handed out through
	// tokenScopes. Default 1h.
	TokenTTL time.Duration
	// Node names this relay node in the store's node registry and on the
	// records it owns (endpoints, ...). Default "local".
	Node string
	// ClusterID is the clusterId of every tunnel (tunnelapi.Config.ClusterID).
	// Default: the first label of PublicURL's host.
	ClusterID string
	// InternalURL is where other relay nodes reach this one. Default "".
	InternalURL string
	// NodePublicURL is where clients reach this node directly, recorded in
	// the node registry. Default PublicURL.
	NodePublicURL string
	// ClusterSecret authenticates the node-to-node hop: with it, requests
	// for a tunnel host, wing or ticket another node holds are carried
	// there (each node must share it; see cluster_hop.go). Default none:
	// every request is served from what this node holds.
	ClusterSecret []byte
	// Lease is how long this node counts as alive after renewing its
	// registration; a node silent for longer is dead and what it owned is
	// released. Default cluster.DefaultLease (15s).
	Lease time.Duration
	// WebDomain enables web forwarding by Host name,
	// <tunnelId>-<port>.<WebDomain>, besides the path form
	// /tunnels/<tunnelId>/ports/<port>/ that is always on.
	// Default "" (path form only).
	WebDomain string
	// Expose publishes tunnel ports on listeners of their own, raw TCP
	// with no token, for clients that cannot run tunnel-client. The
	// caller opens the listeners; Serve closes them. Default none.
	Expose []Exposure
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// SSHHostKeys are the relay's SSH host keys on Dev Tunnels relay
	// sockets (see tunnelrelay.Config.HostKeys); relay-server loads them
	// from its data dir with hostkeys.LoadOrCreate. Default: generated per
	// Server.
	SSHHostKeys []ssh.Signer
	// Wings tunes the wing hub (/ws/wing, /ws/pty, /ws/relay,
	// /api/app/wings, /health). Its token hooks are
	// set by the Server.
	Wings winghub.Config
}

// Server is a running relay: its handler tree and the services behind it.
type Server struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	tickets *ticket.Relay
	authn   *auth.Authenticator
	tokens  *token.Issuer
	hosts   *tunnelrelay.Relay // host and client relay WebSockets
	web     *webforward.Forwarder
	handler http.Handler      // mux behind web forwarding by Host
	wings   *winghub.Hub      // wing hub
	wingTok *wingtoken.Issuer // wing and user tokens
	member  *cluster.Member   // this node in the store's registry
	wingMux *http.ServeMux    // the wing hub's routes, behind the cluster routing
	ready   atomic.Bool
	clusterState
}

// ErrNoAdminKey is returned by New when Config.AdminKey is empty.
var ErrNoAdminKey = errors.New("relay: admin key is required")

// ErrNoStore is returned by New when Config.Store is nil.
var ErrNoStore = errors.New("relay: Store is required")

// New builds a Server. It does not listen; call Serve.
func New(cfg Config, logger *slog.Logger) (*Server, error) {
	if cfg.AdminKey == "" {
		return nil, ErrNoAdminKey
	}
	if cfg.Store == nil {
		return nil, ErrNoStore
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("relay: PublicURL is required")
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry("relay-server")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Node == "" {
		cfg.Node = cluster.DefaultNodeID
	}
	if cfg.NodePublicURL == "" {
		cfg.NodePublicURL = cfg.PublicURL
	}
	s := &Server{cfg: cfg, log: logger, mux: http.NewServeMux()}
	if err := s.initCluster(); err != nil {
		return nil, fmt.Errorf("cluster metrics: %w", err)
	}
	var err error
	s.member, err = cluster.New(cluster.Config{Store: cfg.Store, NodeID: cfg.Node, InternalURL: cfg.InternalURL,
		PublicURL: cfg.NodePublicURL, Lease: cfg.Lease, Now: cfg.Now, Registerer: cfg.Registry,
		LeaseLost: s.leaseLost}, logger.With("service", "cluster"))
	if err != nil {
		return nil, err
	}

	s.authn = &auth.Authenticator{AdminKey: cfg.AdminKey}
	var ring *token.Keyring
	ring, err = loadKeyring(context.Background(), cfg.Store, cfg.Now())
	if err != nil {
		return nil, err
	}
	s.tokens, err = token.New(token.Config{Keys: ring, Issuer: cfg.PublicURL, Now: cfg.Now})
	if err != nil {
		return nil, err
	}
	s.authn.Keys = cfg.Store
	s.authn.Tokens = s.tokens
	s.adminRoutes()
	s.hosts, err = tunnelrelay.New(tunnelrelay.Config{Tokens: s.tokens, Store: cfg.Store, Now: cfg.Now, Registerer: cfg.Registry,
		HostKeys: cfg.SSHHostKeys, HostConnected: s.hostUp},
		logger.With("service", "tunnel-relay"))
	if err != nil {
		return nil, fmt.Errorf("tunnel relay: %w", err)
	}
	s.mux.HandleFunc("GET /relay/host/{tunnelId}", func(w http.ResponseWriter, r *http.Request) {
		s.hosts.ServeHost(w, r, r.PathValue("tunnelId"))
	})
	s.mux.HandleFunc("GET /relay/client/{tunnelId}", func(w http.ResponseWriter, r *http.Request) {
		s.serveClient(w, r, r.PathValue("tunnelId"))
	})
	api, err := tunnelapi.New(tunnelapi.Config{
		Store:     cfg.Store,
		Tokens:    s.tokens,
		Auth:      s.authn,
		PublicURL: cfg.PublicURL,
		TokenTTL:  cfg.TokenTTL,
		Node:      cfg.Node,
		ClusterID: cfg.ClusterID,
		Now:       cfg.Now,
		// endpoints[] lists a host only while its session is live, here
		// or at the live node its endpoint names.
		HostConnected: s.hostConnected,
		PortURIs:      s.portURIs,
		PortURIFormat: s.portURIFormat,
	}, logger.With("service", "tunnels"))
	if err != nil {
		return nil, fmt.Errorf("tunnel API: %w", err)
	}
	s.mux.Handle("/tunnels", api)
	s.mux.Handle("/tunnels/", api)
	s.mux.Handle("/clusters/", api)
	s.web, err = webforward.New(webforward.Config{
		Domain: cfg.WebDomain,
		Dial:   s.dialPort,
		Store:  cfg.Store,
		Tokens: s.tokens,
		Secure: strings.HasPrefix(cfg.PublicURL, "https:"),
		Now:    cfg.Now,
	}, logger.With("service", "web-forwarding"))
	if err != nil {
		return nil, err
	}
	// More specific than /tunnels/, so it wins; the management API
	// has nothing below /tunnels/{id}/ports/{port}. The port record
	// itself is named explicitly: {path...} would match it too.
	s.mux.HandleFunc(webforward.PathPattern, s.web.ServePath)
	s.mux.Handle("/tunnels/{tunnelId}/ports/{port}", api)
	if err := s.mountWings(logger); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", metrics.Handler(cfg.Registry))
	if !cfg.TicketsDisabled {
		tc := cfg.Tickets
		tc.Authorize = s.authorizeTickets
		tc.Minted, tc.Ended = s.ticketMinted, s.ticketEnded
		t, err := ticket.New(tc, logger.With("service", "tickets"), cfg.Registry)
		if err != nil {
			return nil, fmt.Errorf("ticket relay: %w", err)
		}
		s.tickets = t
		s.mux.Handle("/v1/tickets", t)
		s.mux.HandleFunc("/v1/relay/", s.serveTicket)
	}
	s.routeInternal()
	s.handler = s.hopGate(s.web.Wrap(s.mux))
	return s, nil
}

// Handler is the relay's full handler tree.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTP on ln until ctx ends, then stops accepting, drains for
// up to ShutdownTimeout, aborts what is left and returns nil. ln is closed.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler: s.handler,
		// No ReadTimeout/WriteTimeout: a ticket transfer may stream for hours;
		// the ticket relay's own idle timeout is the control there.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// Registered before serving, so the first requests find this node in
	// the registry; should the store be down, Run keeps trying and /readyz
	// says not ready meanwhile.
	if err := s.member.Register(ctx); err != nil {
		s.log.Warn("node registration failed; not ready until the store answers", "err", err)
	}
	memberCtx, stopMember := context.WithCancel(context.WithoutCancel(ctx))
	memberDone := make(chan struct{})
	go func() { s.member.Run(memberCtx); close(memberDone) }()
	clusterDone := make(chan struct{})
	go func() { s.runCluster(memberCtx); close(clusterDone) }()
	// Deregistered last, once connections are closed: what this node held
	// is released at once instead of after the lease.
	defer func() { stopMember(); <-memberDone; <-clusterDone }()
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	exposed := s.serveExposures(ctx)
	defer exposed()
	s.ready.Store(true)

	select {
	case err := <-errc:
		s.ready.Store(false)
		s.closeServices()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	drainCtx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	// relay.restart to every wing and user, wings closed going-away,
	// before HTTP shuts down (docs/protocols/wing.md §2.3).
	s.wings.Shutdown(drainCtx)
	if s.tickets != nil {
		// Sides still waiting for a partner would hold the drain until their
		// TTL; tell them now. Paired transfers get the drain time to finish.
		s.tickets.Drain()
	}
	err := srv.Shutdown(drainCtx)
	s.closeServices()
	if err != nil {
		srv.Close()
		s.log.Warn("drain timed out; aborted the remaining connections", "timeout", s.cfg.ShutdownTimeout)
	}
	return nil
}

func (s *Server) closeServices() {
	if s.tickets != nil {
		s.tickets.Close()
	}
	s.wings.Close()
	// Hijacked WebSockets are not drained by http.Server.Shutdown.
	s.hosts.Close()
	s.closeCluster()
}

// Close releases the services of a Server that was never served.
func (s *Server) Close() error {
	s.closeServices()
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	info := buildinfo.Get()
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": info.Version, "commit": info.Commit})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	if !s.member.Ready() {
		// The error is the store's, which names the database but never
		// its password.
		reason := "store not ready"
		if err := s.member.Err(); err != nil {
			reason = err.Error()
		}
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) now() time.Time { return s.cfg.Now() }

// authorizeTickets lets the admin key, and API keys with the tickets scope,
// mint in any workspace.
func (s *Server) authorizeTickets(r *http.Request, workspace string) error {
	p, err := s.authn.Authenticate(r)
	if errors.Is(err, auth.ErrNoCredentials) {
		return fmt.Errorf("%w: missing Authorization: Bearer <key>", ticket.ErrUnauthenticated)
	}
	if err != nil {
		return fmt.Errorf("%w: unknown or revoked key", ticket.ErrUnauthenticated)
	}
	if !p.Operator(apikey.ScopeTickets) {
		return fmt.Errorf("%w: key lacks the %s scope", ticket.ErrForbidden, apikey.ScopeTickets)
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
