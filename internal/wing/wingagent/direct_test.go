package wingagent

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// events collects a session's events and signals each.
type events struct {
	mu   sync.Mutex
	all  []wingclient.Event
	kick chan struct{}
}

func newEvents() *events { return &events{kick: make(chan struct{}, 64)} }

func (e *events) on(ev wingclient.Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

func (e *events) wait(tb testing.TB, kind string, n int, timeout time.Duration) {
	tb.Helper()
	deadline := time.After(timeout)
	for {
		e.mu.Lock()
		c := 0
		for _, ev := range e.all {
			if ev.Kind == kind {
				c++
			}
		}
		all := append([]wingclient.Event(nil), e.all...)
		e.mu.Unlock()
		if c >= n {
			return
		}
		select {
		case <-e.kick:
		case <-deadline:
			tb.Fatalf("no %d %q events within %s: %+v", n, kind, timeout, all)
		}
	}
}

// syncBuf is an output buffer safe to read while Run writes it.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestDirectSession: a session moves onto a DataChannel on loopback host
// candidates; output after the move is complete and in order and does not
// cross the hub; input goes over the channel too.
func TestDirectSession(t *testing.T) {
	t.Run("binary", func(t *testing.T) { testDirectSession(t, false) })
	// A client that asks for the JSON text frames of older clients.
	t.Run("text", func(t *testing.T) { testDirectSession(t, true) })
}

func testDirectSession(t *testing.T, text bool) {
	url, reg := testRelayWithMetrics(t)
	startAgent(t, url, func(c *Config) { c.DirectNetworks = loopback })
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n = 50000
	s, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: "stty -echo; echo ready; read go; seq 1 " + strconv.Itoa(n) + "; read go; echo bye-$go",
		Direct: wingclient.DirectOptions{Mode: wingclient.DirectRequire, Networks: loopback, TextFrames: text}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := newEvents()
	out := &syncBuf{}
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() { code, err := s.Run(ctx, out, ev.on, 0); done <- result{code, err} }()
	ev.wait(t, "direct", 1, time.Minute)
	// "ready" comes after stty -echo returned: input typed from now on is
	// not echoed, whatever the load (typed earlier, "go" could be).
	waitOutput(t, out, "ready\r\n", time.Minute)
	before := hubBytes(t, reg)
	if err := s.Input(ctx, []byte("go\n")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(out.String(), "\n"+strconv.Itoa(n)+"\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("output did not end: %d bytes", len(out.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Input(ctx, []byte("42\n")); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.code != 0 {
		t.Fatalf("Run: %d %v", r.code, r.err)
	}
	var want strings.Builder
	want.WriteString("ready\r\n")
	for i := 1; i <= n; i++ {
		want.WriteString(strconv.Itoa(i) + "\r\n")
	}
	want.WriteString("bye-42\r\n")
	if got := out.String(); got != want.String() {
		t.Fatalf("output differs from seq 1 %d (%d bytes, want %d)", n, len(got), want.Len())
	}
	if d := hubBytes(t, reg) - before; d > 32<<10 {
		t.Fatalf("the hub moved %.0f bytes of a direct session", d)
	}
}

// waitOutput waits until out holds s.
func waitOutput(t *testing.T, out *syncBuf, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output within %s: %q", s, timeout, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hubBytes sums the hub's byte counters.
func hubBytes(tb testing.TB, reg interface {
	Gather() ([]*dto.MetricFamily, error)
}) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "warren_wing_hub_bytes_total" {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// TestDirectRefused: a wing with direct sessions off refuses the offer;
// require fails with the wing's reason and the session is killed, auto
// stays on the relay.
func TestDirectRefused(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, func(c *Config) { c.DisableDirect = true })
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: "sleep 30",
		Direct: wingclient.DirectOptions{Mode: wingclient.DirectRequire, Networks: loopback}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run(ctx, &syncBuf{}, nil, 0)
	var de *wingclient.DirectError
	if !errors.As(err, &de) || !strings.Contains(err.Error(), "direct sessions are off on this wing") {
		t.Fatalf("Run: %v, want a DirectError naming serve.direct", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for a.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the session was not killed")
		}
		time.Sleep(20 * time.Millisecond)
	}

	s2, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: "read x; echo relay-$x",
		Direct: wingclient.DirectOptions{Mode: wingclient.DirectAuto, Networks: loopback}})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ev := newEvents()
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { _, err := s2.Run(ctx, out, ev.on, 0); done <- err }()
	ev.wait(t, "direct_failed", 1, 30*time.Second)
	s2.Input(ctx, []byte("ok\n"))
	if err := <-done; err != nil || !strings.Contains(out.String(), "relay-ok") {
		t.Fatalf("auto after a refusal: %v, output %q", err, out.String())
	}
}
