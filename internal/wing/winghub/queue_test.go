package winghub

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// dialStalled opens a user socket that reads nothing until the test says
// so, with a tiny receive buffer so that the relay's writes to it block
// after at most a few MiB.
func dialStalled(t *testing.T, url, tok string) *websocket.Conn {
	t.Helper()
	d := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<10) })
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/ws/pty",
		&websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func startVia(t *testing.T, ws *websocket.Conn, w *peer) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"type": "pty.start", "public_key": "k"})
	if err := ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	m := w.read()
	sid, _ := m["session_id"].(string)
	if m["type"] != "pty.start" || sid == "" {
		t.Fatalf("wing got %v", m)
	}
	return sid
}

// TestSlowBrowserDoesNotStallOtherSessions: one user socket stops reading
// while the wing streams megabytes to its session. A second socket, on
// another session of the same wing, keeps receiving output at once, and
// the slow socket, once it reads again, gets its whole stream in order:
// its frames waited in its own queue, nobody else's.
func TestSlowBrowserDoesNotStallOtherSessions(t *testing.T) {
	// The stalled socket must outlive the write timeout however slowly
	// this machine runs the frames below.
	_, url := testHub(t, Config{BrowserQueueBytes: 64 << 20, WriteTimeout: 5 * time.Minute})
	w := registerWing(t, url, "alice", "box")
	slow := dialStalled(t, url, "user:alice")
	sid1 := startVia(t, slow, w)
	fast := dial(t, url+"/ws/pty", "user:alice")
	fast.send(map[string]any{"type": "pty.start", "public_key": "k"})
	m := w.read()
	sid2, _ := m["session_id"].(string)

	// 10 MiB for the stalled socket: more than loopback TCP buffers hold
	// (4 MiB send buffer at most), less than the relay's per-socket queue
	// (set well above it: how much the kernel absorbs varies).
	const frames = 40
	chunk := strings.Repeat("x", 256<<10)
	for i := 0; i < frames; i++ {
		w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid1, Data: chunk})
	}
	w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid1, Data: "last"})
	for i := 0; i < 3; i++ {
		w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid2, Data: "marker"})
		if m := fast.read(); m["data"] != "marker" {
			t.Fatalf("second session got %v", m)
		}
	}
	// Now the slow socket reads: everything arrives, in order.
	for i := 0; i <= frames; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, b, err := slow.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("slow socket, frame %d: %v", i, err)
		}
		var o wp.Output
		json.Unmarshal(b, &o)
		want := chunk
		if i == frames {
			want = "last"
		}
		if o.SessionID != sid1 || o.Data != want {
			t.Fatalf("slow socket, frame %d: session %q, %d bytes", i, o.SessionID, len(o.Data))
		}
	}
}

// TestOverflowingBrowserIsDisconnected: a socket whose queue overflows is
// closed (dropping frames would corrupt its terminal stream; it can
// reattach and get a replay), and only that one: the wing and another
// socket carry on.
func TestOverflowingBrowserIsDisconnected(t *testing.T) {
	h, url := testHub(t, Config{BrowserQueueBytes: 1 << 20})
	w := registerWing(t, url, "alice", "box")
	slow := dialStalled(t, url, "user:alice")
	sid1 := startVia(t, slow, w)
	fast := dial(t, url+"/ws/pty", "user:alice")
	fast.send(map[string]any{"type": "pty.start", "public_key": "k"})
	sid2, _ := w.read()["session_id"].(string)

	// 8 MiB: more than the kernel (at most 4 MiB) and the queue hold.
	chunk := strings.Repeat("x", 256<<10)
	for i := 0; i < 32; i++ {
		w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid1, Data: chunk})
	}
	w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid2, Data: "marker"})
	if m := fast.read(); m["data"] != "marker" {
		t.Fatalf("second session got %v", m)
	}
	deadline := time.Now().Add(20 * time.Second)
	for h.Stats().Users != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the overflowing socket was not closed: %+v", h.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The slow socket ends, with the reason if it got through.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _, err := slow.Read(ctx)
		cancel()
		if err != nil {
			if s := websocket.CloseStatus(err); s != -1 && s != websocket.StatusPolicyViolation {
				t.Fatalf("close status %v: %v", s, err)
			}
			break
		}
	}
}

// TestPickWingIsDeterministic: pty.start without a wing id goes to the
// user's wing with the lowest id, every time (not a random map entry).
func TestPickWingIsDeterministic(t *testing.T) {
	_, url := testHub(t, Config{})
	ids := []string{"m-wing", "c-wing", "x-wing", "b-wing", "q-wing"}
	wings := map[string]*peer{}
	for _, id := range ids {
		wings[id] = registerWing(t, url, "alice", id)
	}
	registerWing(t, url, "bob", "a-wing") // not alice's
	b := dial(t, url+"/ws/pty", "user:alice")
	for i := 0; i < 10; i++ {
		b.send(map[string]any{"type": "pty.start", "public_key": "k"})
		got := ""
		deadline := time.After(5 * time.Second)
		for got == "" {
			for id, w := range wings {
				select {
				case <-w.in:
					got = id
				default:
				}
			}
			select {
			case <-deadline:
				t.Fatal("no wing got pty.start")
			case <-time.After(5 * time.Millisecond):
			}
		}
		if got != "b-wing" {
			t.Fatalf("start %d went to %s, want b-wing (the lowest id)", i, got)
		}
	}
}
