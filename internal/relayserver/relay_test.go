package relayserver

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/ticket"
)

// storeConfig is a Config with adminKey and a SQLite store in a temporary
// directory, closed when the test ends.
func storeConfig(t *testing.T, adminKey string) Config {
	t.Helper()
	db := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	t.Cleanup(func() { db.Close() })
	return Config{AdminKey: adminKey, Store: db, PublicURL: "http://relay.test"}
}

// serve runs a relay on a loopback port and returns its base URL and a stop
// function that cancels Serve and waits for it.
func serve(t *testing.T, cfg Config) (string, func()) {
	t.Helper()
	return serveOn(t, cfg, newListener(t))
}

func newListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveOn is serve on a listener the test opened (to know the URL first).
func serveOn(t *testing.T, cfg Config, ln net.Listener) (string, func()) {
	t.Helper()
	srv, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var serveErr error
	go func() { serveErr = srv.Serve(ctx, ln); close(done) }()
	stop := func() {
		cancel()
		select {
		case <-done:
			if serveErr != nil {
				t.Errorf("Serve: %v", serveErr)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	}
	t.Cleanup(func() {
		cancel()
		<-done
	})
	url := "http://" + ln.Addr().String()
	waitReady(t, url)
	return url, stop
}

func waitReady(t *testing.T, url string) {
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("relay never became ready")
}

func get(t *testing.T, url string, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadyMetrics(t *testing.T) {
	url, _ := serve(t, storeConfig(t, "k"))
	code, body := get(t, url+"/healthz")
	var h map[string]string
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h["status"] != "ok" || h["version"] == "" {
		t.Fatalf("healthz: %d %s", code, body)
	}
	if code, _ := get(t, url+"/readyz"); code != 200 {
		t.Fatalf("readyz: %d", code)
	}
	code, body = get(t, url+"/metrics")
	for _, want := range []string{"warren_build_info", "warren_ticket_active", "go_goroutines"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("metrics lack %s (status %d)", want, code)
		}
	}
}

func TestMintNeedsAdminKey(t *testing.T) {
	url, _ := serve(t, storeConfig(t, "right"))
	mint := func(auth string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/v1/tickets", strings.NewReader(`{"workspace_id":"w","source_id":"a","dest_id":"b"}`))
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for auth, want := range map[string]int{"": 401, "Bearer wrong": 401, "Basic right": 401, "Bearer right": 201, "bearer right": 201} {
		if got := mint(auth); got != want {
			t.Errorf("mint with %q: %d, want %d", auth, got, want)
		}
	}
}

func TestTicketsDisabled(t *testing.T) {
	cfg := storeConfig(t, "k")
	cfg.TicketsDisabled = true
	url, _ := serve(t, cfg)
	if code, _ := get(t, url+"/v1/relay/rly_x", "Authorization", "Bearer rly_x"); code != 404 {
		t.Fatalf("relay route with tickets disabled: %d, want 404", code)
	}
}

// TestDrainThenStop: after Serve's context ends, a waiting ticket side is
// told 503 at once instead of holding the drain until its TTL.
func TestDrainThenStop(t *testing.T) {
	cfg := storeConfig(t, "k")
	cfg.ShutdownTimeout = 5 * time.Second
	cfg.Tickets = ticket.Config{DefaultTTL: time.Hour}
	url, stop := serve(t, cfg)
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/tickets", strings.NewReader(`{"workspace_id":"w","source_id":"a","dest_id":"b"}`))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Ticket string }
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()

	status := make(chan int, 1)
	go func() {
		code, _ := get(t, url+"/v1/relay/"+m.Ticket, "Authorization", "Bearer "+m.Ticket)
		status <- code
	}()
	time.Sleep(100 * time.Millisecond) // let the GET claim its side; the outcome does not depend on it
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case code := <-status:
		if code != 503 && code != 410 {
			t.Errorf("waiting GET got %d during shutdown, want 503", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiting GET held the shutdown")
	}
	<-stopped
}

func TestNewNeedsAdminKey(t *testing.T) {
	if _, err := New(Config{}, nil); err != ErrNoAdminKey {
		t.Fatalf("New without key: %v", err)
	}
}

func TestNewNeedsStore(t *testing.T) {
	if _, err := New(Config{AdminKey: "k", PublicURL: "http://relay.test"}, nil); !errors.Is(err, ErrNoStore) {
		t.Fatalf("New without a store: %v", err)
	}
}
