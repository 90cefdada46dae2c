package tunnelclient

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/protocol/devtunnels"
	"github.com/warrenhq/warren/internal/relay"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"github.com/warrenhq/warren/internal/transport/backoff"
	"github.com/warrenhq/warren/internal/tunnelhost"
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
	stop func()
	// skew is added to the relay's clock (nanoseconds), to expire tokens.
	skew atomic.Int64
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TUNNELCLIENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
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
	code, body = e.do("PUT", "/tunnels/"+e.tunnel+"?api-version="+devtunnels.APIVersion, "Bearer "+e.apiKey, `{"tunnelId":"`+e.tunnel+`"}`)
	if code != 200 && code != 201 {
		t.Fatalf("create tunnel: %d %s", code, body)
	}
	return e
}

func (e *env) start(ln net.Listener) {
	e.t.Helper()
	db, err := sqlite.Open(context.Background(), e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	now := func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }
	srv, err := relay.New(relay.Config{AdminKey: adminKey, Store: db, PublicURL: e.url, ShutdownTimeout: 2 * time.Second, Now: now}, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	e.mu.Lock()
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
	for range 100 {
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

// connectToken reads a connect token through the API key.
func (e *env) connectToken() string {
	e.t.Helper()
	code, b := e.do("GET", "/tunnels/"+e.tunnel+"?api-version="+devtunnels.APIVersion+"&tokenScopes=connect", "Bearer "+e.apiKey, "")
	if code != 200 {
		e.t.Fatalf("GET tunnel: %d %s", code, b)
	}
	var t devtunnels.Tunnel
	if err := json.Unmarshal(b, &t); err != nil {
		e.t.Fatal(err)
	}
	return t.AccessTokens[devtunnels.ScopeConnect]
}

// startHost runs a tunnelhost.Host with ports until the test ends and
// waits until it is connected.
func (e *env) startHost(mode tunnelhost.Mode, ports ...uint16) *tunnelhost.Host {
	e.t.Helper()
	h, _ := e.startHostStoppable(mode, ports...)
	return h
}

// startHostStoppable is startHost that also returns a function stopping
// the host and waiting for its Run to return.
func (e *env) startHostStoppable(mode tunnelhost.Mode, ports ...uint16) (*tunnelhost.Host, func()) {
	e.t.Helper()
	cfg := tunnelhost.Config{
		RelayURL: e.url, TunnelID: e.tunnel, APIKey: e.apiKey, Mode: mode,
		Backoff: &backoff.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: 0.5},
	}
	for _, p := range ports {
		cfg.Ports = append(cfg.Ports, tunnelhost.Port{Number: p})
	}
	h, err := tunnelhost.New(cfg, testLogger(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			e.t.Errorf("host Run did not return")
		}
	}
	e.t.Cleanup(stop)
	waitFor(e.t, "host connected", 15*time.Second, func() bool { return h.Status() == tunnelhost.StatusConnected })
	return h, stop
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

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// runner runs a Client and records its events.
type runner struct {
	t   *testing.T
	c   *Client
	res chan error

	mu     sync.Mutex
	events []Event
	cond   *sync.Cond
}

func (e *env) newClient(cfg Config) (*Client, error) {
	if cfg.RelayURL == "" {
		cfg.RelayURL = e.url
	}
	if cfg.TunnelID == "" {
		cfg.TunnelID = e.tunnel
	}
	if cfg.Backoff == nil {
		cfg.Backoff = &backoff.Backoff{Initial: 50 * time.Millisecond, Max: 400 * time.Millisecond, Jitter: 0.5}
	}
	return New(cfg, testLogger(e.t))
}

func (e *env) runClient(cfg Config) *runner {
	e.t.Helper()
	c, err := e.newClient(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &runner{t: e.t, c: c, res: make(chan error, 1)}
	r.cond = sync.NewCond(&r.mu)
	evs := make(chan Event)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		for {
			select {
			case ev := <-evs:
				r.mu.Lock()
				r.events = append(r.events, ev)
				r.mu.Unlock()
			case <-stopped:
				return
			}
		}
	}()
	go func() { r.res <- c.Run(ctx, evs); close(stopped) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-r.res:
			if err != nil {
				e.t.Errorf("client Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			e.t.Errorf("client Run did not return after cancel")
		}
	})
	return r
}

// waitEvent waits for the n-th (from 1) event of kind for remote port
// (any port if 0) and returns it.
func (r *runner) waitEvent(kind string, port uint16, n int) Event {
	r.t.Helper()
	var found Event
	waitFor(r.t, "event "+kind, 15*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		k := 0
		for _, ev := range r.events {
			if ev.Kind == kind && (port == 0 || ev.RemotePort == port) {
				k++
				if k == n {
					found = ev
					return true
				}
			}
		}
		return false
	})
	return found
}

func (r *runner) count(kind string, port uint16) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := 0
	for _, ev := range r.events {
		if ev.Kind == kind && (port == 0 || ev.RemotePort == port) {
			k++
		}
	}
	return k
}

func echoRoundTrip(t *testing.T, addr, msg string) {
	t.Helper()
	if err := tryEcho(addr, msg); err != nil {
		t.Fatalf("echo via %s: %v", addr, err)
	}
}

func tryEcho(addr, msg string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return &mismatchError{got: string(buf), want: msg}
	}
	return nil
}

type mismatchError struct{ got, want string }

func (e *mismatchError) Error() string { return "echo " + e.got + ", want " + e.want }
