package wingagent

import (
	"bytes"
	"context"
	"crypto/sha256"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// seqOutput is what `seq 1 n` prints on a PTY (onlcr: \n becomes \r\n).
func seqOutput(n int) []byte {
	var b bytes.Buffer
	for i := 1; i <= n; i++ {
		b.WriteString(strconv.Itoa(i))
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// slowWriter is a terminal that cannot keep up: it hashes what it gets,
// sleeps in proportion to every write, and blocks entirely while paused.
type slowWriter struct {
	mu      sync.Mutex
	n       int64
	h       func([]byte)
	perMiB  time.Duration // sleep per MiB written
	pause   chan struct{} // non-nil: the next write waits for it to close
	paused  chan struct{} // closed when a write starts waiting on pause
	pauseAt int64         // the pause applies once n reaches it
}

func (w *slowWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	pause := w.pause
	if pause != nil && w.n >= w.pauseAt {
		w.pause = nil
		close(w.paused)
	} else {
		pause = nil
	}
	w.mu.Unlock()
	if pause != nil {
		<-pause
	}
	time.Sleep(w.perMiB * time.Duration(len(p)) / (1 << 20))
	w.mu.Lock()
	w.h(p)
	w.n += int64(len(p))
	w.mu.Unlock()
	return len(p), nil
}

func (w *slowWriter) written() int64 { w.mu.Lock(); defer w.mu.Unlock(); return w.n }

// produced is the output offset of the agent's only session.
func produced(a *Agent) (int64, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range a.sessions {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.d.outSeq, true
	}
	return 0, false
}

// TestFlowSlowViewerGetsEverything: a command prints far more than the
// relay's per-socket send queue (8 MiB) to a wing attach client whose
// terminal is slow and stops for a while; the client acknowledges what it
// has written, the wing holds the PTY, and every byte arrives in order on
// one connection (no reconnect allowed), with no queue overflow.
func TestFlowSlowViewerGetsEverything(t *testing.T) {
	url, reg := testRelayWithMetrics(t)
	a := startAgent(t, url, nil)
	lines := 4_000_000 // about 34 MiB: four relay send queues
	if testing.Short() {
		lines = 1_500_000
	}
	want := seqOutput(lines)
	if len(want) < 4*8<<20 && !testing.Short() {
		t.Fatalf("only %d bytes of output", len(want))
	}
	sum := sha256.New()
	release := make(chan struct{})
	w := &slowWriter{h: func(p []byte) { sum.Write(p) }, perMiB: 60 * time.Millisecond,
		pause: release, paused: make(chan struct{}), pauseAt: int64(len(want)) / 3}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s, err := client(url, "alice").Open(ctx, wingclient.SessionOptions{WingID: "box", Command: "seq 1 " + strconv.Itoa(lines)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := s.Run(ctx, w, nil, 0) // no reconnect: a disconnect fails the test
		done <- result{code, err}
	}()

	// The terminal stops a third of the way in. Without flow control the
	// wing would go on and the relay would queue until it disconnects
	// the client; with it the wing stops about a window ahead.
	select {
	case <-w.paused:
	case r := <-done:
		t.Fatalf("session ended before the pause: %d %v", r.code, r.err)
	}
	var held int64
	for stable := 0; stable < 5; {
		time.Sleep(100 * time.Millisecond)
		p, ok := produced(a)
		if !ok {
			t.Fatal("the session ended while its viewer was stopped")
		}
		if p == held {
			stable++
		} else {
			held, stable = p, 0
		}
	}
	ahead := held - w.written()
	t.Logf("terminal stopped at %d bytes; the wing held at %d (%d ahead)", w.written(), held, ahead)
	// The relay's queue holds 8 MiB of frames, about 6 MiB of output.
	if ahead > 6<<20 || held >= int64(len(want)) {
		t.Fatalf("the wing did not hold the output: %d bytes produced, %d written", held, w.written())
	}
	close(release)

	r := <-done
	if r.err != nil || r.code != 0 {
		t.Fatalf("session: %d %v", r.code, r.err)
	}
	if w.written() != int64(len(want)) {
		t.Fatalf("got %d bytes, want %d", w.written(), len(want))
	}
	if got, exp := sum.Sum(nil), sha256.Sum256(want); !bytes.Equal(got, exp[:]) {
		t.Fatal("the output arrived altered or out of order")
	}
	if n := counter(t, reg, "warren_wing_hub_user_queue_overflows_total"); n != 0 {
		t.Fatalf("%v send queue overflows", n)
	}
}

// startRaw starts a session running cmd for a raw user and returns its id
// and cipher, and pty.started.
func startRaw(t *testing.T, a *Agent, u *rawUser, cmd string) (string, *wp.Cipher, map[string]any) {
	t.Helper()
	return startRawAcks(t, a, u, cmd, false)
}

// startRawAcks is startRaw, declaring acks in pty.start or not.
func startRawAcks(t *testing.T, a *Agent, u *rawUser, cmd string, acks bool) (string, *wp.Cipher, map[string]any) {
	t.Helper()
	u.send(wp.Start{Type: wp.TypePTYStart, PublicKey: wp.PublicKeyString(u.key), Command: u.sealCommand(a, cmd), Acks: acks})
	m := u.readType("pty.started")
	c, err := wp.NewCipher(u.key, m["public_key"].(string), wp.InfoPTY)
	if err != nil {
		t.Fatal(err)
	}
	return m["session_id"].(string), c, m
}

// TestFlowNonAckingViewer: a viewer that never acknowledges (wingthing's
// browser, an older client) is told the window but never held to it: it
// reads far more than a window and the exit, as before.
func TestFlowNonAckingViewer(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	const total = 3 * wp.OutputWindow
	_, c, started := startRaw(t, a, u, "head -c "+strconv.Itoa(total)+" /dev/zero")
	if started["window"] != float64(wp.OutputWindow) {
		t.Fatalf("pty.started window: %v", started["window"])
	}
	got := 0
	for {
		m := u.read()
		switch m["type"] {
		case "pty.output":
			p, err := c.Open(m["data"].(string))
			if err != nil {
				t.Fatal(err)
			}
			got += len(p)
		case "pty.exited":
			if got != total || m["exit_code"] != float64(0) {
				t.Fatalf("exit %v after %d bytes of %d", m["exit_code"], got, total)
			}
			return
		}
	}
}

// TestFlowOffWithoutWindow: OutputWindow < 0 advertises no window, and
// acks change nothing.
func TestFlowOffWithoutWindow(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, func(c *Config) { c.OutputWindow = -1 })
	u := newRawUser(t, url)
	sid, c, started := startRaw(t, a, u, "head -c "+strconv.Itoa(3*wp.OutputWindow)+" /dev/zero")
	if _, ok := started["window"]; ok {
		t.Fatalf("pty.started advertises a window: %v", started)
	}
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(c, 0)})
	u.readType("pty.exited")
}

// holdsAt waits until the session's output stops growing and returns
// where; it fails if the session ends first.
func holdsAt(t *testing.T, a *Agent) int64 {
	t.Helper()
	var held int64 = -1
	deadline := time.Now().Add(30 * time.Second)
	for stable := 0; stable < 5; {
		if time.Now().After(deadline) {
			t.Fatal("the session's output never stopped")
		}
		time.Sleep(100 * time.Millisecond)
		p, ok := produced(a)
		if !ok {
			t.Fatal("the session ended: its output was not held")
		}
		if p == held {
			stable++
		} else {
			held, stable = p, 0
		}
	}
	return held
}

func waitNoSessions(t *testing.T, a *Agent, why string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for a.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the session did not finish %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFlowControllerLeaves: a controller that declared acks in pty.start
// (confirmed by the relay) and never acknowledges holds the session at
// about a window from the first byte; when its socket closes the relay
// tells the wing (pty.detach) and the session runs to its end.
func TestFlowControllerLeaves(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	const total = 4 * wp.OutputWindow
	sid, c, _ := startRawAcks(t, a, u, "head -c "+strconv.Itoa(total)+" /dev/zero", true)
	held := holdsAt(t, a)
	if held >= wp.OutputWindow+wp.ChunkSize {
		t.Fatalf("held at %d: more than a window (%d) and a chunk", held, wp.OutputWindow)
	}
	// A bogus ack (past what was produced, or sealed with another key)
	// does not move the window.
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(c, total+1)})
	other, _ := wp.GenerateKey()
	oc, _ := wp.NewCipher(other, a.PublicKey(), wp.InfoPTY)
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(oc, held)})
	if again := holdsAt(t, a); again != held {
		t.Fatalf("a bogus ack moved the window: %d, then %d", held, again)
	}
	u.ws.CloseNow()
	waitNoSessions(t, a, "after its controller left")
}

// TestFlowDetachReleases: a controller that did not declare acks turns
// the window on with its first ack, and releases it with pty.detach.
func TestFlowDetachReleases(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	const total = 4 * wp.OutputWindow
	sid, c, _ := startRaw(t, a, u, "head -c "+strconv.Itoa(total)+" /dev/zero")
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(c, 0)})
	holdsAt(t, a)
	u.send(wp.SessionRef{Type: wp.TypePTYDetach, SessionID: sid})
	waitNoSessions(t, a, "after its controller detached")
}

// TestFlowStall: a controller that stops acknowledging without leaving
// loses its window after flowStall.
func TestFlowStall(t *testing.T) {
	old := flowStall
	flowStall = time.Second
	t.Cleanup(func() { flowStall = old })
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	const total = 4 * wp.OutputWindow
	sid, c, _ := startRaw(t, a, u, "head -c "+strconv.Itoa(total)+" /dev/zero")
	u.send(wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(c, 0)})
	// The socket stays open, and reads everything, but acks no more.
	waitNoSessions(t, a, "after its controller stalled")
}
