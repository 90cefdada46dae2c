package relayserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/warrenhq/warren/internal/transport/pipe"
)

// Exposure publishes one tunnel port on a listener of the relay: every TCP
// connection accepted there is forwarded to the port, raw, with no token.
// Whoever can reach the listener can reach the port; that is the point of
// configuring one.
type Exposure struct {
	// Listener accepts the connections. The relay closes it on shutdown.
	Listener net.Listener
	// Tunnel is the tunnel's ID or name, resolved on every connection so
	// the tunnel may be created after the relay starts.
	Tunnel string
	// Port is the tunnel port.
	Port uint16
}

// serveExposures runs the accept loops of cfg.Expose until ctx ends. The
// returned func closes the listeners and waits for the loops and their
// connections.
func (s *Server) serveExposures(ctx context.Context) func() {
	if len(s.cfg.Expose) == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, e := range s.cfg.Expose {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.acceptExposure(ctx, e, &wg)
		}()
	}
	return func() {
		cancel()
		for _, e := range s.cfg.Expose {
			e.Listener.Close()
		}
		wg.Wait()
	}
}

func (s *Server) acceptExposure(ctx context.Context, e Exposure, wg *sync.WaitGroup) {
	log := s.log.With("service", "expose", "listen", e.Listener.Addr().String(), "tunnel", e.Tunnel, "port", e.Port)
	log.Info("exposing tunnel port")
	go func() {
		<-ctx.Done()
		e.Listener.Close()
	}()
	for {
		c, err := e.Listener.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Error("accept failed; exposure stopped", "err", err)
			}
			return
		}
		wg.Add(1)
		go func() {
			if err := s.forwardExposed(ctx, e, c, wg.Done); err != nil {
				_ = c.Close()
				log.Info("exposed connection refused", "remote", c.RemoteAddr().String(), "err", err)
				wg.Done()
			}
		}()
	}
}

// forwardExposed connects c to the tunnel port and returns once the splice
// runs (pipe.JoinAsync: an idle connection holds one goroutine, on c, with
// a fresh stack); done is called when it ends. On an error, c is left
// open and done is not called.
func (s *Server) forwardExposed(ctx context.Context, e Exposure, c net.Conn, done func()) error {
	t, err := s.cfg.Store.FindTunnel(ctx, e.Tunnel)
	if err != nil {
		return fmt.Errorf("tunnel %q: %w", e.Tunnel, err)
	}
	var from netip.AddrPort
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		from = a.AddrPort()
	}
	hc, err := s.dialPort(ctx, t.ID, e.Port, from)
	if err != nil {
		return err
	}
	pipe.JoinAsync(ctx, c, hc, nil, func(pipe.Stats, error) { done() })
	return nil
}

// portURIs lists where a port is reachable without tunnel-client: web
// forwarding by path and by Host, and raw TCP exposures of it.
func (s *Server) portURIs(tunnelID string, port uint16) []string {
	base, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return nil
	}
	ps := strconv.Itoa(int(port))
	uris := []string{s.cfg.PublicURL + "/tunnels/" + tunnelID + "/ports/" + ps + "/"}
	if f := s.portURIFormat(tunnelID); f != "" {
		uris = append(uris, strings.ReplaceAll(f, "{port}", ps))
	}
	for _, e := range s.cfg.Expose {
		if e.Port != port || !s.exposes(e, tunnelID) {
			continue
		}
		_, lp, _ := net.SplitHostPort(e.Listener.Addr().String())
		uris = append(uris, "tcp://"+net.JoinHostPort(base.Hostname(), lp))
	}
	return uris
}

func (s *Server) exposes(e Exposure, tunnelID string) bool {
	if e.Tunnel == tunnelID {
		return true
	}
	t, err := s.cfg.Store.FindTunnel(context.Background(), e.Tunnel)
	return err == nil && t.ID == tunnelID
}

// portURIFormat is the Host-form URI of a tunnel's ports with a "{port}"
// token, or "" without a web domain.
func (s *Server) portURIFormat(tunnelID string) string {
	if s.cfg.WebDomain == "" {
		return ""
	}
	base, err := url.Parse(s.cfg.PublicURL)
	if err != nil {
		return ""
	}
	host := tunnelID + "-{port}." + s.cfg.WebDomain
	if p := base.Port(); p != "" {
		host += ":" + p
	}
	return base.Scheme + "://" + host + "/"
}
