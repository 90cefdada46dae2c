package turncontrol

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnclient"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

func testLog() *slog.Logger {
	if os.Getenv("TURN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testPrepare stands in for the CLI's Prepare (which the e2e tests run):
// it reads psk_file and applies the few defaults the tests rely on.
func testPrepare(p Profile) (Plan, error) {
	if p.Peer == "" {
		return Plan{}, errors.New("config turn.peer: not set")
	}
	cfg := turnclient.Config{Provider: p.Provider, Link: p.Link, Peer: p.Peer, Connections: p.Connections,
		Mode: p.Mode, Ingress: p.Ingress, TURNPort: p.Port, Compat: p.Compat,
		BackoffInitial: 20 * time.Millisecond, WorkerSpacing: 20 * time.Millisecond}
	if p.PSKFile != "" {
		b, err := os.ReadFile(p.PSKFile)
		if err != nil {
			return Plan{}, fmt.Errorf("config turn.psk_file: %w", err)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return Plan{}, fmt.Errorf("config turn.psk: %w", err)
		}
		cfg.PSK = key
	}
	listen := p.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	return Plan{Client: cfg, Listen: listen}, nil
}

type harness struct {
	t     *testing.T
	c     *Controller
	base  string
	token string
	http  *http.Client
	dir   string
}

// startController serves a Controller on a loopback port until the test ends.
func startController(t *testing.T, prepare func(Profile) (Plan, error)) *harness {
	t.Helper()
	h := &harness{t: t, token: "test-token-" + rand.Text(), dir: t.TempDir(), http: &http.Client{Timeout: 30 * time.Second}}
	c, err := New(Config{StateDir: h.dir, Token: h.token, Prepare: prepare, Version: "test"}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.base = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		h.http.CloseIdleConnections()
	})
	return h
}

// do sends a request with the token and decodes a JSON answer into out.
func (h *harness) do(method, path string, body any, out any) int {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, h.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %v in %s", method, path, err, data)
		}
	}
	return resp.StatusCode
}

func (h *harness) raw(method, path string) (int, []byte) {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := h.http.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// waitSession polls a session until cond holds.
func (h *harness) waitSession(name string, what string, cond func(SessionView) bool) SessionView {
	h.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var v SessionView
		h.do("GET", "/v1/sessions/"+name, nil, &v)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("session %s not %s: %+v", name, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventStream follows /v1/events in the background.
type eventStream struct {
	mu     sync.Mutex
	events []Event
	cancel context.CancelFunc
	done   chan struct{}
}

func (h *harness) follow(after uint64) *eventStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/events?after=%d", h.base, after), nil)
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		h.t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		h.t.Errorf("events content type %q", ct)
	}
	s := &eventStream{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			s.mu.Lock()
			s.events = append(s.events, ev)
			s.mu.Unlock()
		}
	}()
	h.t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// wait returns the first event matching match, waiting for it.
func (s *eventStream) wait(t *testing.T, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if match(ev) {
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event in the stream", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startLab(t *testing.T) *turnlab.Lab { t.Helper(); return startLabCfg(t, turnlab.Config{}) }

func startLabCfg(t *testing.T, cfg turnlab.Config) *turnlab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab, err := turnlab.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

func startServer(t *testing.T, cfg turnserver.Config) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := turnserver.New(cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr.String()
}

// dialLocal is one local UDP peer of a session. Tests keep one per
// session: a worker serves one local peer at a time (turn-overlay.md §3.1).
func dialLocal(t *testing.T, local string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp4", local)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// echo sends msg on c until it comes back.
func echo(t *testing.T, c net.Conn, msg []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	for range 50 {
		c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		c.Write(msg)
		if n, err := c.Read(buf); err == nil && bytes.Equal(buf[:n], msg) {
			return
		}
	}
	t.Fatalf("no echo of %q through %s", msg, c.RemoteAddr())
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
