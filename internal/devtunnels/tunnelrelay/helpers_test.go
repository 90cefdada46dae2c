package tunnelrelay

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

const testTunnel = "tun1"

type env struct {
	t      *testing.T
	relay  *Relay
	tokens *token.Issuer
	keys   *token.Keyring
	srv    *httptest.Server
	echo   net.Listener
	reg    *prometheus.Registry // the relay's metrics
	// created is the creation time of the env's tunnels, which their
	// tokens carry.
	created time.Time
	// none makes dialHost and v2Client offer the none key exchange, as
	// warren's tunnel-host and tunnel-client do; false is an older warren
	// or another x/crypto peer.
	none bool
}

// legConfig is the SSH client configuration of the env's hosts and V2
// clients.
func (e *env) legConfig() *ssh.ClientConfig {
	c := clientConfig()
	if e.none {
		c.Config = LegConfig(true)
	}
	return c
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Now()
	for _, id := range []string{testTunnel, "other"} {
		if err := db.CreateTunnel(ctx, &store.Tunnel{ID: id, Name: id, Created: now, Updated: now}); err != nil {
			t.Fatal(err)
		}
	}
	key, err := token.GenerateKey(now)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := token.NewKeyring([]token.Key{key})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.New(token.Config{Keys: keys, Issuer: "http://relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	r, err := New(Config{Tokens: iss, Store: db, Registerer: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /relay/host/{tunnelId}", func(w http.ResponseWriter, req *http.Request) {
		r.ServeHost(w, req, req.PathValue("tunnelId"))
	})
	mux.HandleFunc("GET /relay/client/{tunnelId}", func(w http.ResponseWriter, req *http.Request) {
		r.ServeClient(w, req, req.PathValue("tunnelId"))
	})
	srv := httptest.NewServer(mux)
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	// Cleanups run last-in first-out: relay, then server, then listener.
	t.Cleanup(func() { echo.Close() })
	t.Cleanup(srv.Close)
	t.Cleanup(func() { r.Close() })
	return &env{t: t, relay: r, tokens: iss, keys: keys, srv: srv, echo: echo, reg: reg, created: now}
}

func (e *env) echoPort() uint32 { return uint32(e.echo.Addr().(*net.TCPAddr).Port) }

func (e *env) token(tunnel string, scopes ...string) string {
	e.t.Helper()
	tok, _, err := e.tokens.Issue(token.Grant{TunnelID: tunnel, TunnelCreated: e.created, Scopes: scopes, TTL: time.Hour})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *env) url(role, tunnel string) string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/relay/" + role + "/" + tunnel
}

func dialWS(ctx context.Context, url, auth string, protos ...string) (*wsconn.Conn, *http.Response, error) {
	h := http.Header{}
	if auth != "" {
		h.Set("Authorization", auth)
	}
	return wsconn.Dial(ctx, url, &websocket.DialOptions{Subprotocols: protos, HTTPHeader: h})
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newSigner(t *testing.T) ssh.Signer {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func clientConfig() *ssh.ClientConfig {
	return &ssh.ClientConfig{User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}
}

// testHost is a tunnel host written against the spec: SSH client of the
// relay, nested SSH server for V1 client streams, dialer for V2 streams.
type testHost struct {
	t     *testing.T
	conn  *wsconn.Conn
	ssh   ssh.Conn
	proto string
	key   ssh.Signer
	ports []uint32 // forwarded to nested V1 clients

	mu       sync.Mutex
	payloads []tunnelproto.PortRelayConnectRequest // V2 streams seen
	refuse   bool                                  // refuse client-ssh-session-stream
}

func (e *env) dialHost(protos ...string) *testHost {
	e.t.Helper()
	prev := e.relay.host(testTunnel)
	conn, _, err := dialWS(testCtx(e.t), e.url("host", testTunnel), "Tunnel "+e.token(testTunnel, "host"), protos...)
	if err != nil {
		e.t.Fatalf("host dial: %v", err)
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "relay", e.legConfig())
	if err != nil {
		e.t.Fatalf("host ssh: %v", err)
	}
	h := &testHost{t: e.t, conn: conn, ssh: sc, proto: conn.Subprotocol(), key: newSigner(e.t), ports: []uint32{e.echoPort()}}
	go ssh.DiscardRequests(reqs)
	go h.serve(chans)
	e.t.Cleanup(func() { sc.Close() })
	// The host's handshake can finish just before the relay registers the
	// session.
	waitFor(e.t, "host registered", func() bool {
		cur := e.relay.host(testTunnel)
		return cur != nil && cur != prev
	})
	return h
}

func (h *testHost) serve(chans <-chan ssh.NewChannel) {
	for nc := range chans {
		switch nc.ChannelType() {
		case tunnelproto.ChannelClientSSHSessionStream:
			h.mu.Lock()
			refuse := h.refuse
			h.mu.Unlock()
			if refuse {
				nc.Reject(ssh.Prohibited, "no")
				continue
			}
			ch, reqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go ssh.DiscardRequests(reqs)
			go h.nested(ch)
		case tunnelproto.ChannelForwardedTCPIP:
			pr, _, err := tunnelproto.ParsePortRelayConnectRequest(nc.ExtraData())
			if err != nil {
				nc.Reject(ssh.ConnectionFailed, "bad payload")
				continue
			}
			h.mu.Lock()
			h.payloads = append(h.payloads, pr)
			h.mu.Unlock()
			go dialAndPipe(nc, pr.Port)
		default:
			nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

func dialAndPipe(nc ssh.NewChannel, port uint32) {
	tc, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.FormatUint(uint64(port), 10)))
	if err != nil {
		nc.Reject(ssh.ConnectionFailed, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		tc.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	pipe.Join(context.Background(), ch, tc, nil)
}

// nested runs the V1 host's SSH server inside a client stream (docs/protocols/devtunnels.md §2.5 step 4).
func (h *testHost) nested(ch ssh.Channel) {
	cfg := &ssh.ServerConfig{NoClientAuth: true}
	cfg.AddHostKey(h.key)
	sc, chans, reqs, err := ssh.NewServerConn(chanConn{ch}, cfg)
	if err != nil {
		ch.Close()
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	go func() {
		for _, p := range h.ports {
			sc.SendRequest(tunnelproto.RequestTCPIPForward, true,
				tunnelproto.PortForwardRequest{AddressToBind: "127.0.0.1", Port: p}.Marshal())
		}
	}()
	for nc := range chans {
		switch nc.ChannelType() {
		case tunnelproto.ChannelSession:
			c, reqs, err := nc.Accept()
			if err == nil {
				go ssh.DiscardRequests(reqs)
				_ = c
			}
		case tunnelproto.ChannelDirectTCPIP, tunnelproto.ChannelForwardedTCPIP:
			pr, _, err := tunnelproto.ParsePortRelayConnectRequest(nc.ExtraData())
			if err != nil || !h.forwarded(pr.Port) {
				nc.Reject(ssh.Prohibited, "administratively prohibited")
				continue
			}
			go dialAndPipe(nc, pr.Port)
		default:
			nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
}

func (h *testHost) forwarded(p uint32) bool {
	for _, q := range h.ports {
		if q == p {
			return true
		}
	}
	return false
}

// register sends a V2 PortRelayRequest.
func (h *testHost) register(typ string, port uint32, tok string) (bool, []byte) {
	h.t.Helper()
	ok, reply, err := h.ssh.SendRequest(typ, true,
		tunnelproto.PortRelayRequest{AddressToBind: "127.0.0.1", Port: port, AccessToken: tok}.Marshal())
	if err != nil {
		h.t.Fatalf("%s: %v", typ, err)
	}
	return ok, reply
}

// chanConn makes an ssh.Channel usable as the net.Conn ssh.NewServerConn
// and ssh.NewClientConn require.
type chanConn struct{ ssh.Channel }

type dummyAddr struct{}

func (dummyAddr) Network() string { return "ssh-channel" }
func (dummyAddr) String() string  { return "ssh-channel" }

func (chanConn) LocalAddr() net.Addr                { return dummyAddr{} }
func (chanConn) RemoteAddr() net.Addr               { return dummyAddr{} }
func (chanConn) SetDeadline(t time.Time) error      { return nil }
func (chanConn) SetReadDeadline(t time.Time) error  { return nil }
func (chanConn) SetWriteDeadline(t time.Time) error { return nil }

// echoRoundTrip writes a message through rw and expects it back.
func echoRoundTrip(t *testing.T, rw io.ReadWriter, msg string) {
	t.Helper()
	if _, err := rw.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(rw, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readErr reads from r until it fails, bounded by 5 s.
func readErr(t *testing.T, r io.Reader) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 1024)
		for {
			if _, err := r.Read(buf); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("socket still open after 5 s")
		return errors.New("unreachable")
	}
}
