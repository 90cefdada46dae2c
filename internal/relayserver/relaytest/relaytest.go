package relaytest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver"
	"github.com/warrenhq/warren/internal/store/sqlite"
)

// AdminKey is the relay's admin key.
const AdminKey = "test-admin-key"

// Relay is a relay-server on a loopback port with a SQLite store file, an
// operator API key with the tunnels scope, and one tunnel.
type Relay struct {
	TB     testing.TB
	Addr   string // host:port
	URL    string // http://host:port
	APIKey string // tunnels scope
	Tunnel string // the tunnel Start created
	DBPath string
	// Skew is added to the relay's clock (nanoseconds), to expire tokens.
	Skew atomic.Int64

	mu   sync.Mutex
	db   *sqlite.DB
	reg  *prometheus.Registry
	stop func()
}

// Start runs a relay until the test ends, with API key and tunnel "tun1".
func Start(tb testing.TB) *Relay {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	r := &Relay{TB: tb, DBPath: filepath.Join(tb.TempDir(), "relay.db"), Addr: ln.Addr().String(), Tunnel: "tun1"}
	r.URL = "http://" + r.Addr
	r.start(ln)
	tb.Cleanup(r.Shutdown)
	code, body := r.Do("POST", "/api/v1/keys", "Bearer "+AdminKey, `{"name":"t","scopes":["tunnels"]}`)
	var k struct{ Key string }
	if (code != 200 && code != 201) || json.Unmarshal(body, &k) != nil || k.Key == "" {
		tb.Fatalf("create API key: %d %s", code, body)
	}
	r.APIKey = k.Key
	r.CreateTunnel(r.Tunnel)
	return r
}

// CreateTunnel creates a tunnel with the API key.
func (r *Relay) CreateTunnel(id string) {
	r.TB.Helper()
	code, body := r.Do("PUT", "/tunnels/"+id+"?api-version="+tunnelproto.APIVersion, "Bearer "+r.APIKey, `{"tunnelId":"`+id+`"}`)
	if code != 200 && code != 201 {
		r.TB.Fatalf("create tunnel: %d %s", code, body)
	}
}

func (r *Relay) start(ln net.Listener) {
	r.TB.Helper()
	db, err := sqlite.Open(context.Background(), r.DBPath)
	if err != nil {
		r.TB.Fatal(err)
	}
	now := func() time.Time { return time.Now().Add(time.Duration(r.Skew.Load())) }
	reg := prometheus.NewRegistry()
	srv, err := relayserver.New(relayserver.Config{AdminKey: AdminKey, Store: db, PublicURL: r.URL, ShutdownTimeout: 2 * time.Second, Now: now, Registry: reg}, nil)
	if err != nil {
		r.TB.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.Serve(ctx, ln); close(done) }()
	r.mu.Lock()
	r.db = db
	r.reg = reg
	r.stop = func() {
		cancel()
		<-done
		_ = db.Close()
	}
	r.mu.Unlock()
}

// Metric returns the value of the relay's counter or gauge name with
// exactly these labels (name, value pairs), or -1 if the series does not
// exist. After Restart it reads the new relay's metrics.
func (r *Relay) Metric(name string, labels ...string) float64 {
	r.TB.Helper()
	r.mu.Lock()
	reg := r.reg
	r.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		r.TB.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// DB is the relay's store while it runs.
func (r *Relay) DB() *sqlite.DB {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.db
}

// Shutdown stops the relay (a graceful drain). It is idempotent.
func (r *Relay) Shutdown() {
	r.mu.Lock()
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Restart stops the relay and starts a new one on the same address with
// the same store file.
func (r *Relay) Restart() {
	r.TB.Helper()
	r.Shutdown()
	var ln net.Listener
	var err error
	for range 100 {
		if ln, err = net.Listen("tcp", r.Addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		r.TB.Fatalf("relisten %s: %v", r.Addr, err)
	}
	r.start(ln)
}

// Do sends one API request; auth is the Authorization header ("" for none).
func (r *Relay) Do(method, path, auth, body string) (int, []byte) {
	r.TB.Helper()
	req, _ := http.NewRequest(method, r.URL+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		r.TB.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// ClientView reads the tunnel as a client would, with the API key: ports,
// endpoints and a connect token.
func (r *Relay) ClientView() tunnelproto.Tunnel {
	r.TB.Helper()
	code, b := r.Do("GET", "/tunnels/"+r.Tunnel+"?api-version="+tunnelproto.APIVersion+"&includePorts=true&tokenScopes=connect", "Bearer "+r.APIKey, "")
	var t tunnelproto.Tunnel
	if code != 200 || json.Unmarshal(b, &t) != nil {
		r.TB.Fatalf("GET tunnel: %d %s", code, b)
	}
	return t
}

// ConnectToken is a connect token of the tunnel.
func (r *Relay) ConnectToken() string {
	r.TB.Helper()
	return r.ClientView().AccessTokens[tunnelproto.ScopeConnect]
}

// Echo is a TCP echo server on loopback, closed at cleanup; after the
// peer's EOF it finishes echoing and half-closes.
func Echo(tb testing.TB) uint16 {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
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

// FreePort is a loopback port nobody listened on a moment ago.
func FreePort(tb testing.TB) uint16 {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// WaitFor polls cond every 10 ms until it holds, failing the test after d.
func WaitFor(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
