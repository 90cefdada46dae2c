package tunnelrelay

import (
	"errors"
	"log/slog"
	"net/http"
	"sync"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// clientSession is one connected client of a host session.
type clientSession struct {
	conn *wsconn.Conn
	v2   bool
	done chan struct{} // closed by close

	// Guarded by the host session's mu: set once the V2 SSH handshake is
	// done and the port notifications may flow.
	ready bool

	mu    sync.Mutex
	queue []portEvent
	wake  chan struct{} // capacity 1
	once  sync.Once
}

type portEvent struct {
	add  bool
	port uint32
}

func (c *clientSession) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

func (c *clientSession) enqueue(ev portEvent) {
	c.mu.Lock()
	c.queue = append(c.queue, ev)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// notify sends the queued port events to a V2 client, in order, one at a
// time (each waits for the client's reply).
func (c *clientSession) notify(sc ssh.Conn, log *slog.Logger) {
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		}
		c.mu.Lock()
		evs := c.queue
		c.queue = nil
		c.mu.Unlock()
		for _, ev := range evs {
			typ := tunnelproto.RequestTCPIPForward
			if !ev.add {
				typ = tunnelproto.RequestCancelTCPIPForward
			}
			payload := tunnelproto.PortForwardRequest{AddressToBind: "127.0.0.1", Port: ev.port}.Marshal()
			ok, _, err := sc.SendRequest(typ, true, payload)
			if err != nil {
				return
			}
			if !ok {
				log.Debug("client refused port notification", "request", typ, "port", ev.port)
			}
		}
	}
}

// ServeClient serves the client relay WebSocket of tunnelID (GET
// /relay/client/{tunnelId}). It returns when the client session ends.
func (r *Relay) ServeClient(w http.ResponseWriter, req *http.Request, tunnelID string) {
	if !r.begin() {
		r.m.upgrade(roleClient, upgradeError)
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	defer r.sessions.Done()

	offers := offered(req)
	offersV2 := contains(offers, tunnelproto.SubprotocolClientV2)
	offersV1 := contains(offers, tunnelproto.SubprotocolClientV1)
	if !offersV1 && !offersV2 {
		r.m.upgrade(roleClient, upgradeBadRequest)
		http.Error(w, "unsupported or missing subprotocol", http.StatusBadRequest)
		return
	}
	t, ok := r.authorize(w, req, roleClient, tunnelID, tunnelproto.ScopeConnect)
	if !ok {
		return
	}
	h := r.host(t.ID)
	if h == nil {
		r.m.upgrade(roleClient, upgradeNotFound)
		http.Error(w, "tunnel host not connected", http.StatusNotFound)
		return
	}
	var proto string
	switch {
	case offersV2 && h.v2:
		proto = tunnelproto.SubprotocolClientV2
	case offersV1:
		proto = tunnelproto.SubprotocolClientV1
	default:
		// warren's choice (docs/protocols/devtunnels.md §2.3): a V2-only client cannot use a V1 host.
		r.m.upgrade(roleClient, upgradeBadRequest)
		http.Error(w, "host does not support "+tunnelproto.SubprotocolClientV2, http.StatusBadRequest)
		return
	}
	_, conn, ok := r.accept(w, req, roleClient, proto)
	if !ok {
		return
	}
	c := &clientSession{
		conn: conn, v2: proto == tunnelproto.SubprotocolClientV2,
		done: make(chan struct{}), wake: make(chan struct{}, 1),
	}
	log := r.log.With("role", "client", "subprotocol", proto, "tunnel_id", t.ID, "remote", req.RemoteAddr)
	if !h.addClient(c) {
		log.Info("host left before the client was attached")
		c.close()
		return
	}
	defer h.removeClient(c)
	defer c.close()
	clients := r.m.clients.WithLabelValues(version(c.v2))
	clients.Inc()
	defer clients.Dec()
	log.Debug("client connected")
	if c.v2 {
		r.serveClientV2(h, c, log)
	} else {
		r.serveClientV1(h, c, log)
	}
	log.Debug("client disconnected")
}

// serveClientV1 splices the client's raw bytes onto a
// client-ssh-session-stream channel of the host; the client and host speak
// SSH end to end inside it (docs/protocols/devtunnels.md §2.5 step 3).
func (r *Relay) serveClientV1(h *hostSession, c *clientSession, log *slog.Logger) {
	ch, reqs, err := h.sc.OpenChannel(tunnelproto.ChannelClientSSHSessionStream, nil)
	if err != nil {
		log.Info("host refused client stream", "err", err)
		return
	}
	ssh.RefuseRequests(ch, reqs)
	r.m.forwarded.WithLabelValues(tunnelproto.ChannelClientSSHSessionStream).Inc()
	if _, err := pipe.Join(r.ctx, c.conn, ch, r.m.pipeOptions()); err != nil {
		log.Debug("client stream ended", "err", err)
	}
}

// serveClientV2 terminates SSH with the client and bridges its
// forwarded-tcpip channels to the host (docs/protocols/devtunnels.md §2.6).
func (r *Relay) serveClientV2(h *hostSession, c *clientSession, log *slog.Logger) {
	sc, chans, reqs, err := r.serverHandshake(c.conn, roleClient)
	if err != nil {
		log.Info("client SSH handshake failed", "err", err)
		return
	}
	defer sc.Close()
	go func() {
		for req := range reqs {
			_ = req.Reply(false, nil) // keepalive and anything else
		}
	}()
	h.subscribe(c)
	go c.notify(sc, log)

	// wg counts the bridges until their splices end, not just their setup.
	var wg sync.WaitGroup
	for nc := range chans {
		wg.Add(1)
		go r.bridgeV2(h, nc, log, wg.Done)
	}
	wg.Wait()
}

// bridgeV2 checks one client forwarded-tcpip open and, if allowed, opens
// the same channel on the host and splices the two. It returns once the
// splice runs (pipe.JoinAsync: an idle bridge holds no goroutine, the
// relay's main cost per connection otherwise); done is called when the
// bridge is over, refused or spliced.
func (r *Relay) bridgeV2(h *hostSession, nc ssh.NewChannel, log *slog.Logger, done func()) {
	spliced := false
	defer func() {
		if !spliced {
			done()
		}
	}()
	if nc.ChannelType() != tunnelproto.ChannelForwardedTCPIP {
		_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		return
	}
	pr, full, err := tunnelproto.ParsePortRelayConnectRequest(nc.ExtraData())
	switch {
	case err != nil:
	case !full:
		err = errors.New("no access token")
	default:
		err = r.verifyToken(pr.AccessToken, h.tunnelID, h.created, tunnelproto.ScopeConnect)
	}
	if err == nil && !h.hasPort(pr.Port) {
		err = errors.New("port not forwarded")
	}
	if err != nil {
		log.Info("client stream refused", "port", pr.Port, "err", err)
		_ = nc.Reject(ssh.Prohibited, "administratively prohibited")
		return
	}
	// The six fields go to the host unchanged, the E2E request included;
	// the host's answer (PortRelayConnectResponse after the confirmation's
	// standard fields) goes back to the client, a plain confirmation read
	// as "not enabled". The relay never looks inside an E2E stream.
	hc, hreqs, confirm, err := ssh.OpenChannelWithConfirm(h.sc, tunnelproto.ChannelForwardedTCPIP, pr.Marshal())
	if err != nil {
		var oce *ssh.OpenChannelError
		if errors.As(err, &oce) {
			_ = nc.Reject(oce.Reason, oce.Message)
		} else {
			_ = nc.Reject(ssh.ConnectionFailed, "host unavailable")
		}
		return
	}
	resp := tunnelproto.ParsePortRelayConnectResponse(confirm)
	cc, creqs, err := ssh.AcceptWithData(nc, resp.Marshal())
	// The channel requests of both ends are refused without a goroutine:
	// a bridged connection is mostly idle, and each goroutine is a stack
	// to keep.
	ssh.RefuseRequests(hc, hreqs)
	if err != nil {
		_ = hc.Close()
		return
	}
	ssh.RefuseRequests(cc, creqs)
	if pr.IsE2EEncryptionRequested {
		log.Debug("client stream E2E", "port", pr.Port, "requested", true, "enabled", resp.IsE2EEncryptionEnabled)
	}
	r.m.forwarded.WithLabelValues(tunnelproto.ChannelForwardedTCPIP).Inc()
	port := pr.Port
	spliced = true
	pipe.JoinAsync(r.ctx, cc, hc, r.m.pipeOptions(), func(_ pipe.Stats, err error) {
		if err != nil {
			log.Debug("client stream ended", "port", port, "err", err)
		}
		done()
	})
}
