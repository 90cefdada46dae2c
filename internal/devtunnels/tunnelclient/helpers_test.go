package tunnelclient

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelhost"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
	"github.com/warrenhq/warren/internal/transport/backoff"
)

// env is a real relay-server (internal/relayserver) on a loopback port with a
// sqlite store, an operator API key and one tunnel.
type env struct {
	*relaytest.Relay
	t *testing.T
}

func newEnv(t *testing.T) *env { return &env{Relay: relaytest.Start(t), t: t} }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TUNNELCLIENT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
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
		RelayURL: e.URL, TunnelID: e.Tunnel, APIKey: e.APIKey, Mode: mode,
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
	relaytest.WaitFor(e.t, "host connected", 15*time.Second, func() bool { return h.Status() == tunnelhost.StatusConnected })
	return h, stop
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
		cfg.RelayURL = e.URL
	}
	if cfg.TunnelID == "" {
		cfg.TunnelID = e.Tunnel
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
	relaytest.WaitFor(r.t, "event "+kind, 15*time.Second, func() bool {
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
