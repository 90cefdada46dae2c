package relayserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// Tunnels across nodes. A host's relay session lives on the node it
// reached; that node records itself on the tunnel's endpoints the moment
// the session is up (hostUp), and tells the other nodes, which drop an
// older host of the tunnel (reason 11 semantics across the cluster). A
// client relay socket reaching another node is carried to it whole (the
// SSH session ends on the owner); web forwarding and raw TCP exposures on
// another node open their port connection through /internal/cluster/dial.

// hostOwner returns the live node, other than this one, recorded on the
// tunnel's most recently updated endpoint; nil if there is none.
func (s *Server) hostOwner(ctx context.Context, tunnelID string) (*store.Node, error) {
	eps, err := s.cfg.Store.ListEndpoints(ctx, tunnelID)
	if err != nil {
		return nil, fmt.Errorf("endpoints of tunnel %q: %w", tunnelID, err)
	}
	var best *store.Endpoint
	for _, e := range eps {
		if e.Node != "" && (best == nil || e.Updated.After(best.Updated)) {
			best = e
		}
	}
	if best == nil || best.Node == s.cfg.Node {
		return nil, nil
	}
	return s.liveNode(ctx, best.Node)
}

// hostConnected is tunnelapi's view of a live endpoint: its host is
// connected here, or, in a cluster, at the live node the endpoint names.
func (s *Server) hostConnected(tunnelID, endpointID string) bool {
	if s.hosts.HostConnected(tunnelID, endpointID) {
		return true
	}
	if !s.clustered() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n, err := s.hostOwner(ctx, tunnelID)
	return err == nil && n != nil
}

// serveClient serves a client relay socket here if the host is here, and
// carries it to the owner node otherwise.
func (s *Server) serveClient(w http.ResponseWriter, r *http.Request, ref string) {
	if !s.clustered() || isHop(r) {
		s.hosts.ServeClient(w, r, ref)
		return
	}
	t, err := s.cfg.Store.FindTunnel(r.Context(), ref)
	if err != nil || s.hosts.HostConnected(t.ID, "") {
		s.hosts.ServeClient(w, r, ref) // answers the lookup error itself
		return
	}
	n, err := s.hostOwner(r.Context(), t.ID)
	if err != nil {
		s.log.Info("tunnel host owner unreachable", "tunnel_id", t.ID, "err", err)
	}
	if n == nil {
		s.hosts.ServeClient(w, r, ref) // 404: tunnel host not connected
		return
	}
	s.proxyTo(w, r, n, fmt.Sprintf("the host of tunnel %q", t.ID))
}

// dialPort opens a connection to a tunnel port for web forwarding and raw
// exposures: through the host connected here, or through the node that
// holds it.
func (s *Server) dialPort(ctx context.Context, tunnelID string, port uint16, from netip.AddrPort) (net.Conn, error) {
	c, err := s.hosts.DialPort(ctx, tunnelID, port, from)
	if !errors.Is(err, tunnelrelay.ErrNoHost) || !s.clustered() {
		return c, err
	}
	n, oerr := s.hostOwner(ctx, tunnelID)
	if oerr != nil {
		return nil, fmt.Errorf("%w (%w)", err, oerr)
	}
	if n == nil {
		return nil, err
	}
	return s.dialRemote(ctx, n, tunnelID, port, from)
}

// dialRemote opens a port connection through node n's
// /internal/cluster/dial.
func (s *Server) dialRemote(ctx context.Context, n *store.Node, tunnelID string, port uint16, from netip.AddrPort) (net.Conn, error) {
	u, err := url.Parse(n.InternalURL)
	if err != nil {
		return nil, fmt.Errorf("%w: node %q internal URL: %w", ErrNodeUnreachable, n.ID, err)
	}
	u.Scheme = strings.Replace(u.Scheme, "http", "ws", 1)
	u.Path = strings.TrimRight(u.Path, "/") + internalPrefix + "dial/" + url.PathEscape(tunnelID) + "/" + strconv.Itoa(int(port))
	if from.IsValid() {
		u.RawQuery = url.Values{"from": {from.String()}}.Encode()
	}
	s.cm.hops.WithLabelValues("tunnel_port").Inc()
	ws, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{
		HTTPClient: s.hopClient,
		HTTPHeader: http.Header{HopHeader: {string(s.cfg.ClusterSecret)}},
	})
	if err != nil {
		s.cm.hopFailures.Inc()
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("relay node %q: %s", n.ID, hopErrorText(resp))
		}
		return nil, fmt.Errorf("%w: node %q: %w", ErrNodeUnreachable, n.ID, err)
	}
	remote, _ := net.ResolveTCPAddr("tcp", u.Host)
	if remote == nil {
		remote = &net.TCPAddr{}
	}
	// Ended by Close (pipe.Join, web forwarding), or with the server.
	return newHopConn(s.bgCtx, ws, &net.TCPAddr{}, remote), nil
}

// serveDial is /internal/cluster/dial/{tunnelId}/{port} on the owner: a
// port connection for another node, carried over a WebSocket.
func (s *Server) serveDial(w http.ResponseWriter, r *http.Request) {
	if !isHop(r) {
		writeError(w, http.StatusForbidden, "cluster hop refused")
		return
	}
	port, err := strconv.ParseUint(r.PathValue("port"), 10, 16)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad port")
		return
	}
	from, _ := netip.ParseAddrPort(r.URL.Query().Get("from"))
	ctx, done, ok := s.hops.begin(context.WithoutCancel(r.Context()))
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "relay shutting down")
		return
	}
	defer done()
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	hc, err := s.hosts.DialPort(dctx, r.PathValue("tunnelId"), uint16(port), from)
	cancel()
	if err != nil {
		status := http.StatusBadGateway
		if errors.Is(err, tunnelrelay.ErrNoHost) {
			status = http.StatusNotFound
		}
		writeError(w, status, err.Error())
		return
	}
	defer hc.Close()
	ws, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	local, remote := wsconn.RequestAddrs(r)
	if local == nil {
		local = &net.TCPAddr{}
	}
	if remote == nil {
		remote = &net.TCPAddr{}
	}
	c := newHopConn(ctx, ws, local, remote)
	defer c.Close()
	_, _ = pipe.Join(ctx, c, hc, nil)
}

// hostUp runs when a host session is up here: the tunnel's endpoints now
// name this node, and the other nodes drop any older host of the tunnel.
func (s *Server) hostUp(tunnelID string) {
	since, ok := s.hosts.HostSince(tunnelID)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	eps, err := s.cfg.Store.ListEndpoints(ctx, tunnelID)
	if err != nil {
		s.log.Warn("cannot record this node on the tunnel's endpoints", "tunnel_id", tunnelID, "err", err)
		return
	}
	for _, e := range eps {
		if e.Node == s.cfg.Node && !e.Updated.Before(since) {
			continue
		}
		e.Node, e.Updated = s.cfg.Node, s.now()
		if err := s.cfg.Store.PutEndpoint(ctx, e); err != nil {
			s.log.Warn("cannot record this node on the tunnel's endpoint", "tunnel_id", tunnelID, "endpoint", e.ID, "err", err)
		}
	}
	if !s.clustered() {
		return
	}
	others, err := s.otherLiveNodes(ctx)
	if err != nil {
		s.log.Warn("cannot tell the other nodes about the tunnel's new host", "tunnel_id", tunnelID, "err", err)
		return
	}
	for _, n := range others {
		s.bg.Go(func() {
			ctx, cancel := context.WithTimeout(s.bgCtx, 5*time.Second)
			defer cancel()
			path := internalPrefix + "host-replaced/" + url.PathEscape(tunnelID) + "?since=" + url.QueryEscape(since.UTC().Format(time.RFC3339Nano))
			resp, err := s.hopRequest(ctx, n, http.MethodPost, path)
			if err != nil {
				s.log.Debug("telling a node about a tunnel's new host failed", "node", n.ID, "tunnel_id", tunnelID, "err", err)
				return
			}
			resp.Body.Close()
		})
	}
}

// serveHostReplaced is /internal/cluster/host-replaced/{tunnelId}: another
// node has a newer host of the tunnel; an older one here is dropped with
// the replaced signal.
func (s *Server) serveHostReplaced(w http.ResponseWriter, r *http.Request) {
	if !isHop(r) {
		writeError(w, http.StatusForbidden, "cluster hop refused")
		return
	}
	since, err := time.Parse(time.RFC3339Nano, r.URL.Query().Get("since"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad since")
		return
	}
	id := r.PathValue("tunnelId")
	if s.hosts.Replace(id, since) {
		s.log.Info("host replaced by a newer host on another node", "tunnel_id", id)
		s.cm.replaced.WithLabelValues("host").Inc()
	}
	w.WriteHeader(http.StatusNoContent)
}

// sweepHosts drops the hosts here whose tunnel's endpoints name another
// live node since the host connected: the backstop for a missed
// host-replaced message.
func (s *Server) sweepHosts(ctx context.Context) {
	for _, id := range s.hosts.Hosts() {
		since, ok := s.hosts.HostSince(id)
		if !ok {
			continue
		}
		eps, err := s.cfg.Store.ListEndpoints(ctx, id)
		if err != nil {
			return
		}
		for _, e := range eps {
			if e.Node == "" || e.Node == s.cfg.Node || !e.Updated.After(since) {
				continue
			}
			if _, err := s.liveNode(ctx, e.Node); err != nil {
				continue
			}
			if s.hosts.Replace(id, since) {
				s.log.Info("host replaced by a newer host on another node", "tunnel_id", id, "node", e.Node)
				s.cm.replaced.WithLabelValues("host").Inc()
			}
			break
		}
	}
}

// hopErrorText is the error an owner node answered with.
func hopErrorText(resp *http.Response) string {
	defer resp.Body.Close()
	var b [512]byte
	n, _ := resp.Body.Read(b[:])
	msg := strings.TrimSpace(string(b[:n]))
	if msg == "" {
		return resp.Status
	}
	return resp.Status + ": " + msg
}
