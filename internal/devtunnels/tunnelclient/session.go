package tunnelclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// session is one live SSH session: with the relay (V2) or, nested, with
// the host (V1).
type session struct {
	conn  ssh.Conn
	proto string
	v2    bool
	token string // connect token, sent in V2 forwarded-tcpip
	// e2e asks for end-to-end encryption of V2 streams; hostKey checks the
	// host key of those inner sessions.
	e2e     bool
	hostKey ssh.HostKeyCallback
	log     *slog.Logger
	met     *metrics // nil: none

	mu        sync.Mutex
	announced map[uint16]bool
}

func (s *session) announce(p uint16, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.announced[p] = true
	} else {
		delete(s.announced, p)
	}
}

func (s *session) isAnnounced(p uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.announced[p]
}

// open opens a forwarded-tcpip channel to remote port p for a local peer.
func (s *session) open(p uint16, peer net.Addr) (ssh.Channel, error) {
	req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(p)}
	if ta, ok := peer.(*net.TCPAddr); ok {
		req.OriginatorIP, req.OriginatorPort = ta.IP.String(), uint32(ta.Port)
	}
	if !s.v2 {
		ch, reqs, err := s.conn.OpenChannel(tunnelproto.ChannelForwardedTCPIP, req.MarshalStandard())
		if err != nil {
			return nil, err
		}
		ssh.RefuseRequests(ch, reqs)
		return ch, nil
	}
	req.AccessToken = s.token
	req.IsE2EEncryptionRequested = s.e2e
	ch, reqs, confirm, err := ssh.OpenChannelWithConfirm(s.conn, tunnelproto.ChannelForwardedTCPIP, req.Marshal())
	if err != nil {
		return nil, err
	}
	ssh.RefuseRequests(ch, reqs)
	if !tunnelproto.ParsePortRelayConnectResponse(confirm).IsE2EEncryptionEnabled {
		if s.e2e {
			// Requested, not required, as in the Dev Tunnels SDKs: a host
			// that does not serve E2E (an older warren) still gets the
			// stream, over the relay's own encryption.
			s.log.Warn("the host did not enable end-to-end encryption for this stream", "port", p)
		}
		return ch, nil
	}
	if !s.e2e {
		_ = ch.Close()
		return nil, errors.New("tunnelclient: the host enabled end-to-end encryption that was not asked for")
	}
	inner, err := openE2E(ch, s.hostKey)
	if err == nil && s.met != nil {
		s.met.e2eStreams.Inc()
	}
	return inner, err
}

// openE2E runs the client side of a stream's end-to-end SSH session
// (dev-tunnels-ssh's SecureStream) inside ch: handshake as user "tunnel"
// with no authentication, the host key checked, then one "session"
// channel that carries the bytes. Closing the returned channel ends the
// inner session and ch.
//
// The inner session is configured like the V1 one: AES-GCM first where the
// CPU has AES instructions, and large packets (the host sends at most
// what this side announces), sized so that one sealed packet fits in one
// packet of the outer channel; and it prefers an ed25519 host key, whose
// signature costs the host and this side about a tenth of ECDSA P-384's
// (x/crypto's default order would pick P-384, which warren hosts publish
// too): this handshake runs on every new connection.
func openE2E(ch ssh.Channel, hostKey ssh.HostKeyCallback) (ssh.Channel, error) {
	cfg := &ssh.ClientConfig{User: "tunnel", HostKeyCallback: hostKey, Timeout: tunnelrelay.SSHHandshakeTimeout,
		HostKeyAlgorithms: e2eHostKeyAlgos,
		Config: ssh.Config{
			Ciphers:          tunnelrelay.EndToEndCiphers(),
			ChannelMaxPacket: tunnelrelay.EndToEndMaxPacket,
		},
	}
	hsTimer := time.AfterFunc(tunnelrelay.SSHHandshakeTimeout, func() { _ = ch.Close() })
	conn, chans, reqs, err := ssh.NewClientConn(tunnelrelay.ChannelConn(ch, "forwarded-tcpip"), "host", cfg)
	hsTimer.Stop()
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("tunnelclient: E2E handshake: %w", err)
	}
	// The host sends no request and opens no channel (the mux queues a
	// few meanwhile), so they are refused from after the open on, by the
	// inner session's reader as they arrive: every forwarded connection,
	// idle ones included, has the session, and while it is idle it keeps
	// no goroutine (sshfork parks the session's own).
	inner, ireqs, err := conn.OpenChannel(tunnelproto.ChannelSession, nil)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tunnelclient: E2E stream channel: %w", err)
	}
	ssh.RefuseRequests(inner, ireqs)
	ssh.RefuseIncoming(conn, chans, reqs, "unknown channel type")
	return &e2eChannel{Channel: inner, conn: conn}, nil
}

// e2eHostKeyAlgos is every host key algorithm x/crypto supports, ed25519
// first (see openE2E).
var e2eHostKeyAlgos = func() []string {
	algos := []string{ssh.KeyAlgoED25519}
	for _, a := range ssh.SupportedAlgorithms().HostKeys {
		if a != ssh.KeyAlgoED25519 {
			algos = append(algos, a)
		}
	}
	return algos
}()

// e2eChannel is the inner channel of an E2E stream; Close also ends the
// inner session (and with it the outer channel it runs on).
type e2eChannel struct {
	ssh.Channel
	conn ssh.Conn
}

func (c *e2eChannel) Close() error {
	err := c.Channel.Close()
	_ = c.conn.Close()
	return err
}

// consumer is sshfork's ConsumeData, which pipe.Join uses to copy out of
// a channel without a buffer of its own; the embedded interface hides it.
type consumer interface {
	ConsumeData(fn func(p []byte) error) (int, error)
}

// ConsumeData passes the inner channel's ConsumeData on, so that the copy
// to the local connection takes the decrypted bytes where they are queued.
func (c *e2eChannel) ConsumeData(fn func(p []byte) error) (int, error) {
	if cc, ok := c.Channel.(consumer); ok {
		return cc.ConsumeData(fn)
	}
	// Not reached with sshfork's channels; a plain Read otherwise.
	buf := make([]byte, 32<<10)
	n, err := c.Channel.Read(buf)
	if n > 0 {
		if ferr := fn(buf[:n]); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// notifier is sshfork's SetDataNotify and ConsumeDataNow, with which
// pipe copies out of a channel only while it has data (no goroutine
// parked on an idle one).
type notifier interface {
	SetDataNotify(fn func())
	ConsumeDataNow(fn func(p []byte) error) (int, error)
}

// SetDataNotify and ConsumeDataNow pass the inner channel's on (it is
// sshfork's: the type assertion holds).
func (c *e2eChannel) SetDataNotify(fn func()) { c.Channel.(notifier).SetDataNotify(fn) }

func (c *e2eChannel) ConsumeDataNow(fn func(p []byte) error) (int, error) {
	return c.Channel.(notifier).ConsumeDataNow(fn)
}

// hostKeyCallback accepts the host keys published in the endpoint.
func hostKeyCallback(ep *tunnelproto.TunnelEndpoint) (ssh.HostKeyCallback, error) {
	var keys [][]byte
	for _, k := range ep.HostPublicKeys {
		b, err := base64.StdEncoding.DecodeString(k)
		if err != nil {
			continue
		}
		pk, err := ssh.ParsePublicKey(b)
		if err != nil {
			continue
		}
		keys = append(keys, pk.Marshal())
	}
	if len(keys) == 0 {
		if len(ep.HostPublicKeys) > 0 {
			return nil, errors.New("tunnelclient: endpoint publishes no parsable host key")
		}
		// No key published: nothing to check against. The Go SDK never
		// checks the host key at all; the relay socket (URL, TLS and the
		// connect token) is what identifies the tunnel here.
		return ssh.InsecureIgnoreHostKey(), nil
	}
	return func(_ string, _ net.Addr, key ssh.PublicKey) error {
		kb := key.Marshal()
		for _, k := range keys {
			if bytes.Equal(k, kb) {
				return nil
			}
		}
		return errors.New("tunnelclient: host key does not match the endpoint's hostPublicKeys")
	}, nil
}

// offerNone reports whether the V2 session on the relay socket at uri
// offers the none key exchange (tunnelrelay.NoneAllowed).
func (c *Client) offerNone(uri string) bool {
	none, _ := tunnelrelay.NoneAllowed(uri, c.cfg.AllowInsecureNone) // the dial has checked the URL
	if !none {
		c.log.Debug("not offering the none key exchange: plain ws:// to a relay beyond loopback")
	}
	return none
}

// serveSession runs the SSH session over conn until it ends.
func (c *Client) serveSession(ctx context.Context, conn *wsconn.Conn, proto string, ep *tunnelproto.TunnelEndpoint) (bool, error) {
	v2 := proto == tunnelproto.SubprotocolClientV2
	cfg := &ssh.ClientConfig{User: "tunnel", Timeout: tunnelrelay.SSHHandshakeTimeout}
	addr := "relay"
	var e2eHostKey ssh.HostKeyCallback
	if v2 && c.cfg.E2E {
		cb, err := hostKeyCallback(ep)
		if err != nil {
			_ = conn.Close()
			return false, fatal(err)
		}
		e2eHostKey = cb
	}
	if v2 {
		// The relay is the SSH server; its key is not verified: the
		// WebSocket URL and TLS identify it (docs/protocols/devtunnels.md §2.4).
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		cfg.Config = tunnelrelay.LegConfig(c.offerNone(ep.ClientRelayURI))
	} else {
		// End to end with the host: encrypted, large packets (each side
		// sends at most what the other announces).
		cfg.Ciphers = tunnelrelay.EndToEndCiphers()
		cfg.ChannelMaxPacket = tunnelrelay.EndToEndMaxPacket
		cfg.HostKeyAlgorithms = e2eHostKeyAlgos
		addr = "host"
		cb, err := hostKeyCallback(ep)
		if err != nil {
			_ = conn.Close()
			return false, fatal(err)
		}
		cfg.HostKeyCallback = cb
	}
	sc, chans, reqs, err := tunnelrelay.SSHHandshake(conn, addr, cfg)
	if errors.Is(err, tunnelrelay.ErrNoneRefused) {
		return false, fatal(err) // retrying cannot help
	}
	if err != nil {
		return false, fmt.Errorf("tunnelclient: SSH handshake (%s): %w", proto, err)
	}
	s := &session{conn: sc, proto: proto, v2: v2, token: c.currentToken(), announced: map[uint16]bool{},
		e2e: v2 && c.cfg.E2E, hostKey: e2eHostKey, log: c.log, met: c.met}
	var wg sync.WaitGroup
	defer func() {
		_ = sc.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for nc := range chans {
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	})
	// Serve global requests at once: x/crypto buffers only a few, and the
	// session channel open below needs the connection's reader.
	c.setSession(s)
	defer c.clearSession(s)
	if c.met != nil {
		c.met.connected.Set(1)
		defer c.met.connected.Set(0)
	}
	c.log.Info("connected", "protocol", proto)
	c.emit(Event{Kind: EventConnected, Addr: proto})
	wg.Go(func() {
		for r := range reqs {
			c.handleRequest(s, r)
		}
	})
	if !v2 {
		// The SDK opens a session channel right after the handshake and
		// keeps it; do the same (some hosts expect it).
		ch, creqs, err := sc.OpenChannel(tunnelproto.ChannelSession, nil)
		if err != nil {
			return true, fmt.Errorf("tunnelclient: open session channel: %w", err)
		}
		go ssh.DiscardRequests(creqs)
		defer ch.Close()
	}
	grace := time.AfterFunc(staleGrace, func() { c.dropStale(s) })
	defer grace.Stop()

	done := make(chan error, 1)
	go func() { done <- sc.Wait() }()
	select {
	case <-ctx.Done():
		_ = sc.Close()
		<-done
		return true, ctx.Err()
	case err := <-done:
		if err == nil {
			err = errors.New("session closed")
		}
		return true, fmt.Errorf("tunnelclient: relay session lost: %w", err)
	}
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sess = s
	c.notifyLocked()
}

func (c *Client) clearSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == s {
		c.sess = nil
		c.notifyLocked()
	}
}

// notifyLocked wakes the connections waiting in waitSession. c.mu is held.
func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *Client) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.notifyLocked()
}

func (c *Client) isCurrent(s *session) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess == s
}

// handleRequest answers a global request of the relay (V2) or host (V1).
func (c *Client) handleRequest(s *session, r *ssh.Request) {
	switch r.Type {
	case tunnelproto.RequestTCPIPForward, tunnelproto.RequestCancelTCPIPForward:
	default:
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
		return
	}
	pf, err := tunnelproto.ParsePortForwardRequest(r.Payload)
	if err != nil || pf.Port == 0 || pf.Port > 65535 {
		if r.WantReply {
			_ = r.Reply(false, nil)
		}
		return
	}
	p := uint16(pf.Port)
	if r.Type == tunnelproto.RequestCancelTCPIPForward {
		s.announce(p, false)
		if r.WantReply {
			_ = r.Reply(true, nil)
		}
		if c.isCurrent(s) {
			c.removeListener(p)
		}
		return
	}
	ok := c.ensureListener(p)
	if r.WantReply {
		if ok {
			_ = r.Reply(true, tunnelproto.MarshalPortForwardSuccess(pf.Port))
		} else {
			_ = r.Reply(false, nil)
		}
	}
	// Connections to p open channels only from here (serveConn waits for
	// the announcement), after the reply: a host accepts a port's channels
	// once it has the answer to its tcpip-forward (the TS SDK's V1 host
	// refuses one that comes first, "Forwarding channel was not requested").
	s.announce(p, true)
	c.notify()
}

// dropStale removes the listeners of ports that session s (still the
// current one) has not announced.
func (c *Client) dropStale(s *session) {
	var stale []uint16
	c.mu.Lock()
	if c.sess == s {
		for p := range c.listeners {
			if !s.isAnnounced(p) {
				stale = append(stale, p)
			}
		}
	}
	c.mu.Unlock()
	for _, p := range stale {
		c.log.Info("port not announced after reconnect; removing", "port", p)
		c.removeListener(p)
	}
}

// listener is the local listener of one remote port.
type listener struct {
	remote, local uint16
	ln            net.Listener
}

func (c *Client) localPort(remote uint16) uint16 {
	if l, ok := c.cfg.PortMap[remote]; ok {
		return l
	}
	return remote
}

// ensureListener opens the listener of remote port p if it is not open.
// It reports whether one is open.
func (c *Client) ensureListener(p uint16) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if _, ok := c.listeners[p]; ok {
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()

	local := c.localPort(p)
	ln, err := net.Listen("tcp", net.JoinHostPort(c.cfg.Bind, strconv.Itoa(int(local))))
	if err != nil {
		c.log.Warn("cannot listen for port; skipped", "port", p, "local", local, "err", err)
		c.emit(Event{Kind: EventReady, RemotePort: p, LocalPort: local, Err: err})
		return false
	}
	l := &listener{remote: p, local: uint16(ln.Addr().(*net.TCPAddr).Port), ln: ln}
	c.mu.Lock()
	if _, dup := c.listeners[p]; dup || c.closed {
		closed := c.closed
		c.mu.Unlock()
		_ = ln.Close()
		return !closed
	}
	c.listeners[p] = l
	c.wg.Add(1)
	c.mu.Unlock()
	go c.acceptLoop(l)
	c.log.Info("listening", "port", p, "addr", ln.Addr().String())
	c.emit(Event{Kind: EventReady, RemotePort: p, LocalPort: l.local, Addr: ln.Addr().String()})
	return true
}

func (c *Client) removeListener(p uint16) {
	c.mu.Lock()
	l, ok := c.listeners[p]
	delete(c.listeners, p)
	c.mu.Unlock()
	if !ok {
		return
	}
	_ = l.ln.Close()
	c.log.Info("port removed", "port", p)
	c.emit(Event{Kind: EventRemoved, RemotePort: p, LocalPort: l.local, Addr: l.ln.Addr().String()})
}

func (c *Client) closeAll() {
	c.mu.Lock()
	c.closed = true
	ls := c.listeners
	c.listeners = map[uint16]*listener{}
	c.mu.Unlock()
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

func (c *Client) acceptLoop(l *listener) {
	defer c.wg.Done()
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || c.ctx.Err() != nil {
				return
			}
			// Temporary trouble (EMFILE, say): keep the listener.
			c.log.Warn("accept failed", "port", l.remote, "err", err)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.serveConn(l, conn)
		}()
	}
}

// waitSession returns the current session once it has announced remote
// port p, waiting up to pendingWait for that (across a reconnect, say); nil
// if it does not happen.
func (c *Client) waitSession(p uint16) *session {
	t := time.NewTimer(pendingWait)
	defer t.Stop()
	for {
		c.mu.Lock()
		s, changed := c.sess, c.changed
		c.mu.Unlock()
		if s != nil && s.isAnnounced(p) {
			return s
		}
		select {
		case <-changed:
		case <-t.C:
			return nil
		case <-c.ctx.Done():
			return nil
		}
	}
}

// serveConn forwards one accepted local connection. It returns once the
// splice runs (pipe.JoinAsync: an idle connection holds one goroutine, on
// the local socket, started with a fresh stack rather than this one's,
// grown by the setup); c.wg counts the splice until it ends.
func (c *Client) serveConn(l *listener, conn net.Conn) {
	s := c.waitSession(l.remote)
	if s == nil {
		c.log.Debug("port not forwarded by a relay session; closing local connection", "port", l.remote)
		_ = conn.Close()
		return
	}
	ch, err := s.open(l.remote, conn.RemoteAddr())
	if err != nil {
		c.log.Warn("cannot open forwarded channel", "port", l.remote, "err", err)
		_ = conn.Close()
		return
	}
	var opts *pipe.Options
	m := c.met
	if m != nil {
		m.conns.Inc()
		m.active.Inc()
		opts = &pipe.Options{OnCopy: func(dir pipe.Direction, n int) {
			if dir == pipe.AToB {
				m.bytesOut.Add(float64(n))
			} else {
				m.bytesIn.Add(float64(n))
			}
		}}
	}
	c.wg.Add(1)
	pipe.JoinAsync(c.ctx, conn, ch, opts, func(_ pipe.Stats, err error) {
		defer c.wg.Done()
		if m != nil {
			m.active.Dec()
		}
		if err != nil && c.ctx.Err() == nil {
			c.log.Debug("forwarded connection ended", "port", l.remote, "err", err)
		}
	})
}
