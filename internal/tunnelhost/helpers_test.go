package tunnelhost

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"
	"golang.org/x/crypto/ssh"

	"github.com/warrenhq/warren/internal/protocol/devtunnels"
	"github.com/warrenhq/warren/internal/relay"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

const adminKey = "test-admin-key"

// env is a real relay-server (internal/relay) on a loopback port with a
// sqlite store, an operator API key and one tunnel.
type env struct {
	t      *testing.T
	dbPath string
	addr   string
	url    string
	apiKey string
	tunnel string

	mu   sync.Mutex
	db   *sqlite.DB
	stop func()
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TUNNELHOST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dbPath: filepath.Join(t.TempDir(), "relay.db"), addr: ln.Addr().String(), tunnel: "tun1"}
	e.url = "http://" + e.addr
	e.start(ln)
	t.Cleanup(e.shutdown)
	code, body := e.do("POST", "/api/v1/keys", "Bearer "+adminKey, `{"name":"t","scopes":["tunnels"]}`)
	if code != 200 && code != 201 {
		t.Fatalf("create API key: %d %s", code, body)
	}
	var k struct{ Key string }
	if err := json.Unmarshal(body, &k); err != nil || k.Key == "" {
		t.Fatalf("create API key: %v %s", err, body)
	}
	e.apiKey = k.Key
	e.createTunnel(e.tunnel)
	return e
}

func (e *env) createTunnel(id string) {
	e.t.Helper()
	code, body := e.do("PUT", "/tunnels/"+id+"?api-version="+devtunnels.APIVersion, "Bearer "+e.apiKey, `{"tunnelId":"`+id+`"}`)
	if code != 200 && code != 201 {
		e.t.Fatalf("create tunnel: %d %s", code, body)
	}
}

func (e *env) start(ln net.Listener) {
	e.t.Helper()
	db, err := sqlite.Open(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	srv, err := relay.New(relay.Config{AdminKey: adminKey, Store: db, PublicURL: e.url, ShutdownTimeout: 2 * time.Second}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	e.mu.Lock()
	e.db = db
	e.stop = func() {
		cancel()
		<-done
		_ = db.Close()
	}
	e.mu.Unlock()
}

func (e *env) shutdown() {
	e.mu.Lock()
	stop := e.stop
	e.stop = nil
	e.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// restart stops the relay and starts a new one on the same address with
// the same store file.
func (e *env) restart() {
	e.t.Helper()
	e.shutdown()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", e.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatalf("relisten %s: %v", e.addr, err)
	}
	e.start(ln)
}

func (e *env) do(method, path, auth, body string) (int, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// clientView reads the tunnel as a client would: connect token, endpoints.
func (e *env) clientView() devtunnels.Tunnel {
	e.t.Helper()
	code, b := e.do("GET", "/tunnels/"+e.tunnel+"?api-version="+devtunnels.APIVersion+"&includePorts=true&tokenScopes=connect", "Bearer "+e.apiKey, "")
	if code != 200 {
		e.t.Fatalf("GET tunnel: %d %s", code, b)
	}
	var t devtunnels.Tunnel
	if err := json.Unmarshal(b, &t); err != nil {
		e.t.Fatal(err)
	}
	return t
}

func (e *env) hostConfig(ports ...uint16) Config {
	cfg := Config{RelayURL: e.url, TunnelID: e.tunnel, APIKey: e.apiKey}
	for _, p := range ports {
		cfg.Ports = append(cfg.Ports, Port{Number: p})
	}
	return cfg
}

// runHost starts h.Run; the returned channel gets Run's result. The host is
// stopped at cleanup.
func runHost(t *testing.T, h *Host) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() { res <- h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return res
}

func newHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitConnected(t *testing.T, h *Host) {
	t.Helper()
	waitFor(t, "host connected", 15*time.Second, func() bool { return h.Status() == StatusConnected })
}

// echoServer is a TCP echo server on loopback; after the peer's EOF it
// finishes echoing and half-closes.
func echoServer(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
				_ = c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func echoRoundTrip(t *testing.T, rw io.ReadWriter, msg string) {
	t.Helper()
	if _, err := rw.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(rw, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo %q, want %q", buf, msg)
	}
}

// sdkClient connects the official Go SDK client (V1 relay path).
func (e *env) sdkClient(ctx context.Context) *tunnels.Client {
	e.t.Helper()
	u, _ := url.Parse(e.url)
	m, err := tunnels.NewManager([]tunnels.UserAgent{{Name: "warren-test", Version: "1"}},
		func() string { return "Bearer " + e.apiKey }, u, nil, devtunnels.APIVersion)
	if err != nil {
		e.t.Fatal(err)
	}
	tun, err := m.GetTunnel(ctx, &tunnels.Tunnel{Name: e.tunnel}, &tunnels.TunnelRequestOptions{
		IncludePorts: true, TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeConnect},
	})
	if err != nil {
		e.t.Fatalf("GetTunnel: %v", err)
	}
	// acceptLocalConnectionsForForwardedPorts=false: with true the SDK
	// would listen on 127.0.0.1:P, which the echo server already holds.
	c, err := tunnels.NewClient(log.New(io.Discard, "", 0), tun, false)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := c.Connect(ctx, ""); err != nil {
		e.t.Fatalf("SDK Connect: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	return c
}

// sdkEcho pipes one connection through the SDK client to port and echoes.
func sdkEcho(t *testing.T, ctx context.Context, c *tunnels.Client, port uint16, msg string) error {
	t.Helper()
	mine, theirs := net.Pipe()
	defer mine.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.ConnectToForwardedPort(fctx, theirs, port) }()
	_ = mine.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := mine.Write([]byte(msg)); err != nil {
		select {
		case err2 := <-done:
			if err2 != nil {
				return err2
			}
		case <-time.After(time.Second):
		}
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(mine, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	cancel()
	<-done
	return nil
}

// v2Client is a raw x/crypto SSH client on the V2 client relay socket.
type v2Client struct {
	conn  ssh.Conn
	token string
}

func (e *env) v2Client(ctx context.Context) *v2Client {
	e.t.Helper()
	view := e.clientView()
	if len(view.Endpoints) != 1 {
		e.t.Fatalf("endpoints: %+v", view.Endpoints)
	}
	tok := view.AccessTokens[devtunnels.ScopeConnect]
	ws, resp, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{devtunnels.SubprotocolClientV2},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + tok}},
	})
	if err != nil {
		e.t.Fatalf("dial client relay: %v (%v)", err, resp)
	}
	if ws.Subprotocol() != devtunnels.SubprotocolClientV2 {
		e.t.Fatalf("client subprotocol %q", ws.Subprotocol())
	}
	sc, chans, reqs, err := ssh.NewClientConn(ws, "relay", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "test client")
		}
	}()
	e.t.Cleanup(func() { sc.Close() })
	return &v2Client{conn: sc, token: tok}
}

func (c *v2Client) open(port uint16) (ssh.Channel, error) {
	payload := devtunnels.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port), AccessToken: c.token}.Marshal()
	ch, reqs, err := c.conn.OpenChannel(devtunnels.ChannelForwardedTCPIP, payload)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// v1RawClient is a raw x/crypto SSH client on the V1 client socket, talking
// to the host's nested server end to end; it checks the published host key.
func (e *env) v1RawClient(ctx context.Context, h *Host) ssh.Conn {
	e.t.Helper()
	view := e.clientView()
	if len(view.Endpoints) != 1 {
		e.t.Fatalf("endpoints: %+v", view.Endpoints)
	}
	tok := view.AccessTokens[devtunnels.ScopeConnect]
	ws, resp, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{devtunnels.SubprotocolClientV1},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + tok}},
	})
	if err != nil {
		e.t.Fatalf("dial client relay: %v (%v)", err, resp)
	}
	sc, chans, reqs, err := ssh.NewClientConn(ws, "host", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.FixedHostKey(h.HostPublicKey()), Timeout: 10 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
		}
	}()
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "test client")
		}
	}()
	e.t.Cleanup(func() { sc.Close() })
	return sc
}
