package wingagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	"github.com/warrenhq/warren/internal/wing/winghub"
	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// onlySession is the agent's only session.
func onlySession(t *testing.T, a *Agent) *session {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sessions {
		return s
	}
	t.Fatal("no session")
	return nil
}

// TestFallbackResendRespectsWindow: a session on a direct channel whose
// terminal stops; the channel's buffers fill with many windows of output
// the client has not consumed; then the channel dies. The wing sends that
// output again over the relay, and with an acking controller it keeps to
// the output window doing so: the slow terminal gets every byte once and
// in order, on one connection, and the relay's send queue never overflows
// (an unthrottled resend of up to 16 MiB would overflow its 8 MiB).
func TestFallbackResendRespectsWindow(t *testing.T) {
	// A send queue of 4 MiB (the hub's default is 8): a resend of the
	// ~13 MiB the channel's buffers hold overflows it even when the
	// sockets' kernel buffers take several MiB, while a window (2 MiB of
	// output, under 3 MiB of frames) fits.
	reg := prometheus.NewRegistry()
	url := hubtest.StartWith(t, reg, func(c *winghub.Config) { c.BrowserQueueBytes = 4 << 20 })
	a := startAgent(t, url, func(c *Config) { c.DirectNetworks = loopback })
	const lines = 3_000_000 // about 24 MiB
	want := append([]byte("ready\r\n"), seqOutput(lines)...)
	sum := sha256.New()
	release := make(chan struct{})
	w := &slowWriter{h: func(p []byte) { sum.Write(p) }, perMiB: 200 * time.Millisecond,
		pause: release, paused: make(chan struct{}), pauseAt: 1 << 20}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// No retry within the test: what follows the fallback stays on the relay.
	s, err := client(url, "alice").Open(ctx, wingclient.SessionOptions{WingID: "box",
		Command: "stty -echo; echo ready; read go; seq 1 " + strconv.Itoa(lines),
		Direct:  wingclient.DirectOptions{Mode: wingclient.DirectRequire, Networks: loopback, Retry: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev := newEvents()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := s.Run(ctx, w, ev.on, 0) // no reconnect: a disconnect fails the test
		done <- result{code, err}
	}()
	ev.wait(t, "direct", 1, time.Minute)
	for w.written() < int64(len("ready\r\n")) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := s.Input(ctx, []byte("go\n")); err != nil {
		t.Fatal(err)
	}

	// The terminal stops at 1 MiB; the channel's buffers fill up.
	select {
	case <-w.paused:
	case r := <-done:
		t.Fatalf("session ended before the pause: %d %v", r.code, r.err)
	}
	held := holdsAt(t, a)
	ahead := held - w.written()
	t.Logf("terminal stopped at %d bytes; the wing held at %d (%d ahead)", w.written(), held, ahead)
	if ahead <= 2*wp.OutputWindow {
		t.Fatalf("only %d bytes ahead of the terminal: want more than two windows in the channel's buffers", ahead)
	}

	// The wing loses the channel with all that unconsumed.
	ss := onlySession(t, a)
	ss.mu.Lock()
	d := ss.d.conn
	ss.mu.Unlock()
	if d == nil {
		t.Fatal("the session is not on a channel")
	}
	ss.directDied(ctx, d, "test")
	close(release)

	r := <-done
	if r.err != nil || r.code != 0 {
		t.Fatalf("session: %d %v", r.code, r.err)
	}
	if w.written() != int64(len(want)) {
		t.Fatalf("got %d bytes, want %d (lost or repeated)", w.written(), len(want))
	}
	if got, exp := sum.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, exp[:]) {
		t.Fatal("the output arrived altered or out of order")
	}
	ev.wait(t, "fallback", 1, time.Second)
	if n := counter(t, reg, "warren_wing_hub_user_queue_overflows_total"); n != 0 {
		t.Fatalf("%v send queue overflows", n)
	}
}
