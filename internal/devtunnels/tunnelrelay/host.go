package tunnelrelay

import (
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// hostSession is one connected host: the relay is its SSH server.
type hostSession struct {
	r        *Relay
	tunnelID string
	created  time.Time // of the tunnel instance; tokens must be bound to it
	v2       bool
	ws       *websocket.Conn
	conn     *wsconn.Conn
	sc       *ssh.ServerConn
	started  time.Time

	mu      sync.Mutex
	ended   bool
	ports   map[uint32]struct{} // V2 registered ports
	clients map[*clientSession]struct{}
}

// ServeHost serves the host relay WebSocket of tunnelID (GET
// /relay/host/{tunnelId}). It returns when the host session ends.
func (r *Relay) ServeHost(w http.ResponseWriter, req *http.Request, tunnelID string) {
	if !r.begin() {
		r.m.upgrade(roleHost, upgradeError)
		http.Error(w, "relay shutting down", http.StatusServiceUnavailable)
		return
	}
	defer r.sessions.Done()

	offers := offered(req)
	var proto string
	switch {
	case contains(offers, tunnelproto.SubprotocolHostV2):
		proto = tunnelproto.SubprotocolHostV2
	case contains(offers, tunnelproto.SubprotocolHostV1):
		proto = tunnelproto.SubprotocolHostV1
	default:
		r.m.upgrade(roleHost, upgradeBadRequest)
		http.Error(w, "unsupported or missing subprotocol", http.StatusBadRequest)
		return
	}
	t, ok := r.authorize(w, req, roleHost, tunnelID, tunnelproto.ScopeHost)
	if !ok {
		return
	}
	ws, conn, ok := r.accept(w, req, roleHost, proto)
	if !ok {
		return
	}
	log := r.log.With("role", "host", "subprotocol", proto, "remote", req.RemoteAddr)
	sc, chans, reqs, err := r.serverHandshake(conn, roleHost)
	if err != nil {
		log.Info("host SSH handshake failed", "err", err)
		conn.Close()
		return
	}
	h := &hostSession{
		r: r, tunnelID: t.ID, created: t.Created, v2: proto == tunnelproto.SubprotocolHostV2,
		ws: ws, conn: conn, sc: sc, started: r.cfg.Now(),
		ports:   make(map[uint32]struct{}),
		clients: make(map[*clientSession]struct{}),
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		conn.Close()
		return
	}
	old := r.hosts[h.tunnelID]
	r.hosts[h.tunnelID] = h
	r.mu.Unlock()
	hosts := r.m.hosts.WithLabelValues(version(h.v2))
	hosts.Inc()
	if old != nil {
		log.Info("host replaced by a newer host", "tunnel_id", h.tunnelID)
		// Async: the close handshake may take up to 5 s with a slow peer,
		// and the new host should not wait for it.
		go old.replace()
	}
	log.Info("host connected", "tunnel_id", h.tunnelID, "kex", kexKind(sc))
	if r.cfg.HostConnected != nil {
		r.cfg.HostConnected(h.tunnelID)
	}

	go func() {
		// Hosts open no channels towards the relay (docs/protocols/devtunnels.md §2.4–2.6).
		for nc := range chans {
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}()
	go h.handleRequests(reqs)

	err = sc.Wait()
	h.end()
	hosts.Dec()
	log.Info("host disconnected", "tunnel_id", h.tunnelID, "err", err,
		"duration", r.cfg.Now().Sub(h.started))
}

// replace tells an old host it was replaced, then drops it.
//
// x/crypto/ssh offers no way to send SSH_MSG_DISCONNECT on an established
// connection, and the packet cannot be forged below it once keys are in
// use, so the WebSocket close frame carries the signal instead (see the
// package documentation).
func (h *hostSession) replace() {
	_ = h.ws.Close(CloseStatusReplaced, ReplacedReason)
	_ = h.conn.Close()
}

// end unregisters the session and closes every client socket of it.
func (h *hostSession) end() {
	r := h.r
	r.mu.Lock()
	if r.hosts[h.tunnelID] == h {
		delete(r.hosts, h.tunnelID)
	}
	r.mu.Unlock()

	h.mu.Lock()
	h.ended = true
	clients := make([]*clientSession, 0, len(h.clients))
	for c := range h.clients {
		clients = append(clients, c)
	}
	h.clients = nil
	h.mu.Unlock()

	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.close() }()
	}
	_ = h.sc.Close()
	_ = h.conn.Close()
	wg.Wait()
}

// addClient attaches a client to the session; false if the host is gone.
func (h *hostSession) addClient(c *clientSession) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended {
		return false
	}
	h.clients[c] = struct{}{}
	return true
}

func (h *hostSession) removeClient(c *clientSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
}

// subscribe marks a V2 client ready for port notifications and queues the
// ports registered so far, under one lock so that none is missed or sent
// twice.
func (h *hostSession) subscribe(c *clientSession) {
	h.mu.Lock()
	defer h.mu.Unlock()
	c.ready = true
	for p := range h.ports {
		c.enqueue(portEvent{add: true, port: p})
	}
}

func (h *hostSession) hasPort(p uint32) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.ports[p]
	return ok
}

// setPort adds or removes a registered port and tells the ready V2 clients
// when that changes anything. It reports whether the port set changed.
func (h *hostSession) setPort(p uint32, add bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, had := h.ports[p]; had == add {
		return false
	}
	if add {
		h.ports[p] = struct{}{}
	} else {
		delete(h.ports, p)
	}
	for c := range h.clients {
		if c.v2 && c.ready {
			c.enqueue(portEvent{add: add, port: p})
		}
	}
	return true
}

// handleRequests answers the host's global requests (docs/protocols/devtunnels.md §2.4–2.6).
func (h *hostSession) handleRequests(reqs <-chan *ssh.Request) {
	log := h.r.log.With("role", "host", "tunnel_id", h.tunnelID)
	for req := range reqs {
		if !h.v2 {
			// V1 hosts send none; keepalive and anything else get false.
			_ = req.Reply(false, nil)
			continue
		}
		switch req.Type {
		case tunnelproto.RequestTCPIPForward:
			pr, err := tunnelproto.ParsePortRelayRequest(req.Payload)
			if err == nil {
				err = h.r.verifyToken(pr.AccessToken, h.tunnelID, h.created, tunnelproto.ScopeHost)
			}
			// Port 0 would ask the relay to pick one, which means nothing
			// here: the host forwards its own local ports.
			if err != nil || pr.Port == 0 || pr.Port > 0xffff {
				log.Info("port registration refused", "port", pr.Port, "err", err)
				_ = req.Reply(false, nil)
				continue
			}
			// Reply before telling clients: a host (the TS SDK's) accepts
			// a channel for the port only once it has the reply, and a
			// client told first could open one ahead of it.
			_ = req.Reply(true, tunnelproto.MarshalPortForwardSuccess(pr.Port))
			h.setPort(pr.Port, true)
		case tunnelproto.RequestCancelTCPIPForward:
			// The session is already authenticated as this tunnel's host,
			// and removing a port grants nothing, so the token is not
			// re-checked here.
			pr, err := tunnelproto.ParsePortRelayRequest(req.Payload)
			if err != nil {
				_ = req.Reply(false, nil)
				continue
			}
			_ = req.Reply(h.setPort(pr.Port, false), nil)
		default:
			// keepalive@openssh.com included: any reply counts (docs/protocols/devtunnels.md §2.4).
			_ = req.Reply(false, nil)
		}
	}
}
