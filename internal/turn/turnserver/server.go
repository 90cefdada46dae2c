package turnserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// Config configures a Server.
type Config struct {
	// Listen is the UDP address of the DTLS listener. Default 0.0.0.0:56000.
	Listen string
	// Connect is the upstream host:port. Required.
	Connect string
	// Egress is "udp" (raw datagrams, default) or "tcp" (KCP+smux).
	Egress string
	// HandshakeTimeout bounds each DTLS handshake. Default 30s.
	HandshakeTimeout time.Duration
	// IdleTimeout ends a udp session with no traffic in one direction for
	// this long. Default 30m.
	IdleTimeout time.Duration
	// UpstreamDialTimeout bounds each tcp-egress upstream dial. Default 10s.
	UpstreamDialTimeout time.Duration
	// Keys are the PSK identities and keys. Empty means no PSK clients.
	Keys map[string][]byte
	// Compat also accepts the unauthenticated prototype profile.
	Compat bool
	// Registry receives the warren_runtime_* series; nil registers none.
	Registry prometheus.Registerer
}

// Server is a running or runnable tunnel-server.
type Server struct {
	cfg  Config
	log  *slog.Logger
	opts []dtls.ServerOption
	m    *overlaymetrics.Metrics

	mu sync.Mutex
	ln *turndial.Listener
}

// New checks cfg and builds the DTLS profile (stage server_init /
// policy_validate errors).
func New(cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "0.0.0.0:56000"
	}
	if cfg.Egress == "" {
		cfg.Egress = "udp"
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Minute
	}
	if cfg.UpstreamDialTimeout <= 0 {
		cfg.UpstreamDialTimeout = 10 * time.Second
	}
	if cfg.Connect == "" {
		return nil, overlay.Errorf(overlay.StagePolicyValidate, "connect: upstream address is required")
	}
	if cfg.Egress != "udp" && cfg.Egress != "tcp" {
		return nil, overlay.Errorf(overlay.StagePolicyValidate, "egress: expected udp or tcp, got %q", cfg.Egress)
	}
	prof := turndial.ServerProfile{Keys: cfg.Keys, Compat: cfg.Compat}
	if cfg.Egress == "udp" {
		prof.Protocols = []string{overlay.ALPNFramedUDP}
	}
	opts, err := turndial.ServerOptions(prof)
	if err != nil {
		return nil, overlay.Wrap(overlay.StageServerInit, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := overlaymetrics.New(cfg.Registry, overlaymetrics.Labels{Runtime: "server", Provider: "none", TURNMode: "udp", PeerMode: "dtls"})
	m.Touch(overlaymetrics.ClientToUpstream, overlaymetrics.UpstreamToClient)
	return &Server{cfg: cfg, log: log.With("runtime", "server"), opts: opts, m: m}, nil
}

// Listen binds the DTLS listener and returns its address.
func (s *Server) Listen() (net.Addr, error) {
	laddr, err := net.ResolveUDPAddr("udp", s.cfg.Listen)
	if err != nil {
		return nil, overlay.Errorf(overlay.StageListen, "listen address %q: %w", s.cfg.Listen, err)
	}
	ln, err := turndial.Listen(laddr, s.opts)
	if err != nil {
		return nil, overlay.Errorf(overlay.StageListen, "listen on %s: %w", s.cfg.Listen, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return ln.Addr(), nil
}

// Serve accepts sessions until ctx is done, then closes them all and
// returns nil. It calls Listen first if that has not been done.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		if _, err := s.Listen(); err != nil {
			return err
		}
		ln = s.ln
	}
	s.log.Info("listening", "event", "runtime_startup", "stage", overlay.StageListen, "result", "ready",
		"addr", ln.Addr().String(), "egress", s.cfg.Egress, "psk_identities", len(s.cfg.Keys), "compat", s.cfg.Compat)
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, watch, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			s.m.TransportFailure.WithLabelValues(overlay.StageAccept).Inc()
			s.log.Warn("accept failed", "event", "connection_accept_failure", "stage", overlay.StageAccept, "result", "failed", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.handle(ctx, c, watch)
		}()
	}
	ln.Close()
	wg.Wait()
	s.log.Info("stopped", "event", "runtime_stop", "stage", overlay.StageShutdown, "result", "stopped")
	return nil
}

var errHandshakeTimeout = errors.New("handshake timeout")

func newSessionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Server) handle(ctx context.Context, c *dtls.Conn, watch *turndial.KeyWatch) {
	defer c.Close()
	log := s.log.With("session_id", newSessionID(), "peer", c.RemoteAddr().String())
	log.Debug("connection accepted", "event", "connection_accepted", "stage", overlay.StageAccept, "result", "accepted")
	s.m.SessionStarts.Inc()
	fail := func(stage string, err error) {
		s.m.SessionFailures.WithLabelValues(stage).Inc()
		s.m.TransportFailure.WithLabelValues(stage).Inc()
		log.Warn("connection failed", "event", "connection_failure", "stage", stage, "result", "failed", "err", err)
	}
	hctx, cancel := context.WithTimeoutCause(ctx, s.cfg.HandshakeTimeout, errHandshakeTimeout)
	hctx, refuse := context.WithCancelCause(hctx)
	go func() {
		// A wrong key shows as a Finished that does not decrypt: refuse
		// the client with an alert now instead of both sides timing out.
		select {
		case <-watch.Mismatch():
			if err := watch.Refuse(); err != nil {
				log.Debug("refusal alert not sent", "err", err)
			}
			refuse(turndial.ErrKeyMismatch)
		case <-hctx.Done():
		}
	}()
	err := c.HandshakeContext(hctx)
	watch.HandshakeDone()
	if cause := context.Cause(hctx); err != nil && cause != nil && !errors.Is(cause, context.Canceled) {
		err = fmt.Errorf("%w (%v)", cause, err)
	}
	refuse(nil)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			if state, ok := c.ConnectionState(); ok && len(state.IdentityHint) > 0 {
				err = fmt.Errorf("PSK identity %q: %w", state.IdentityHint, err)
			}
			fail(overlay.StageDTLSHandshake, err)
		}
		return
	}
	state, _ := c.ConnectionState()
	identity := string(state.IdentityHint)
	framed := state.NegotiatedProtocol == overlay.ALPNFramedUDP
	log.Info("connection ready", "event", "connection_ready", "stage", overlay.StageDTLSHandshake, "result", "ready", "identity", identity,
		"framing", map[bool]string{true: "peer-id", false: "raw"}[framed])
	s.m.ActiveWorkers.Inc()
	defer s.m.ActiveWorkers.Dec()
	switch {
	case s.cfg.Egress == "tcp":
		err = s.serveTCP(ctx, c, log)
	case framed:
		err = s.serveFramed(ctx, c, log)
	default:
		err = s.serveUDP(ctx, c)
	}
	if err != nil && ctx.Err() == nil {
		stage := overlay.StageOf(err)
		if stage == "" {
			stage = overlay.StageForwardingLoop
		}
		fail(stage, err)
		return
	}
	log.Info("connection closed", "event", "connection_closed", "stage", overlay.StageForwardingLoop, "result", "stopped")
}

func (s *Server) serveUDP(ctx context.Context, c *dtls.Conn) error {
	var d net.Dialer
	up, err := d.DialContext(ctx, "udp", s.cfg.Connect)
	if err != nil {
		return overlay.Errorf(overlay.StageUpstreamDial, "dial upstream %s: %w", s.cfg.Connect, err)
	}
	defer up.Close()
	stop := context.AfterFunc(ctx, func() { c.Close(); up.Close() })
	defer stop()
	errc := make(chan error, 2)
	pump := func(dst, src net.Conn, dir string) {
		buf := make([]byte, 1600)
		for {
			src.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			n, err := src.Read(buf)
			if err != nil && isRefused(err) {
				// An ICMP port unreachable from upstream surfaces on the next
				// read of a connected UDP socket; the session stays up.
				continue
			}
			if err != nil {
				errc <- fmt.Errorf("%s: %w", dir, err)
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				// A refused upstream datagram (ICMP) is not fatal for UDP.
				if isRefused(err) {
					s.m.Drop(dir)
					continue
				}
				errc <- fmt.Errorf("%s: %w", dir, err)
				return
			}
			s.m.Forwarded(dir, n)
		}
	}
	go pump(up, c, overlaymetrics.ClientToUpstream)
	go pump(c, up, overlaymetrics.UpstreamToClient)
	err = <-errc
	c.Close()
	up.Close()
	<-errc
	if isClosed(err) {
		return nil
	}
	return err
}

func (s *Server) serveTCP(ctx context.Context, c *dtls.Conn, log *slog.Logger) error {
	kl, err := kcp.ServeConn(overlay.NoneBlockCrypt(), 0, 0, overlay.NewPacketConn(c))
	if err != nil {
		return overlay.Errorf(overlay.StageServerInit, "kcp: %w", err)
	}
	defer kl.Close()
	stop := context.AfterFunc(ctx, func() { kl.Close(); c.Close() })
	defer stop()
	ks, err := kl.AcceptKCP()
	if err != nil {
		return fmt.Errorf("kcp accept: %w", err)
	}
	overlay.TuneKCP(ks)
	defer ks.Close()
	sess, err := smux.Server(ks, overlay.SmuxConfig())
	if err != nil {
		return fmt.Errorf("smux: %w", err)
	}
	defer sess.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if sess.IsClosed() || isClosed(err) || errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("smux accept: %w", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer st.Close()
			dctx, cancel := context.WithTimeout(ctx, s.cfg.UpstreamDialTimeout)
			var d net.Dialer
			up, err := d.DialContext(dctx, "tcp", s.cfg.Connect)
			cancel()
			if err != nil {
				s.m.TransportFailure.WithLabelValues(overlay.StageUpstreamDial).Inc()
				log.Warn("upstream dial failed", "event", "connection_failure", "stage", overlay.StageUpstreamDial, "result", "failed", "err", err)
				return
			}
			defer up.Close()
			join(ctx, st, up, s.m, overlaymetrics.ClientToUpstream, overlaymetrics.UpstreamToClient)
		}()
	}
}

// join pipes a↔b until both ends finish, counting bytes as they flow
// (a→b is dirAB).
func join(ctx context.Context, a, b io.ReadWriteCloser, m *overlaymetrics.Metrics, dirAB, dirBA string) {
	pipe.Join(ctx, a, b, &pipe.Options{OnCopy: func(d pipe.Direction, n int) {
		if d == pipe.AToB {
			m.Forwarded(dirAB, n)
		} else {
			m.Forwarded(dirBA, n)
		}
	}})
}

func isClosed(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, context.Canceled)
}

func isRefused(err error) bool {
	return errors.Is(err, errConnRefused)
}
