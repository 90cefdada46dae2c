package wingagent

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// writeGate holds the wing's writes to the relay while shut, the way a
// relay that stops reading (or a full network path) does, without any
// timing: a Write waits until the gate opens or the connection closes.
type writeGate struct {
	mu      sync.Mutex
	cond    *sync.Cond
	shut    bool
	dials   int
	blocked chan struct{} // a Write is waiting on the shut gate
}

func newWriteGate() *writeGate {
	g := &writeGate{blocked: make(chan struct{}, 1)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

func (g *writeGate) set(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.cond.Broadcast()
	g.mu.Unlock()
}

func (g *writeGate) client() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, nw, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, nw, addr)
		if err != nil {
			return nil, err
		}
		g.mu.Lock()
		g.dials++
		g.mu.Unlock()
		return &gatedConn{Conn: c, g: g}, nil
	}}}
}

type gatedConn struct {
	net.Conn
	g      *writeGate
	closed bool // under g.mu
}

func (c *gatedConn) Write(p []byte) (int, error) {
	c.g.mu.Lock()
	if c.g.shut && !c.closed {
		select {
		case c.g.blocked <- struct{}{}:
		default:
		}
	}
	for c.g.shut && !c.closed {
		c.g.cond.Wait()
	}
	closed := c.closed
	c.g.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}

func (c *gatedConn) Close() error {
	c.g.mu.Lock()
	c.closed = true
	c.g.cond.Broadcast()
	c.g.mu.Unlock()
	return c.Conn.Close()
}

// TestReplayWriteDoesNotHoldSessionLock: while the wing's write of a
// replay (or of output) to the relay is stuck, the session still takes
// input, so its lock is not held across the network write. When the path
// clears, the same connection carries the replay and live output on.
func TestReplayWriteDoesNotHoldSessionLock(t *testing.T) {
	url := testRelay(t)
	g := newWriteGate()
	startAgent(t, url, func(c *Config) { c.HTTPClient = g.client() })
	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart, PublicKey: wp.PublicKeyString(u.key), Cols: 80, Rows: 24})
	m := u.readType("pty.started")
	sid := m["session_id"].(string)
	c, _ := wp.NewCipher(u.key, m["public_key"].(string), wp.InfoPTY)
	u.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c.Seal([]byte("echo be$((2+2))fore\n"))})
	for out := ""; !strings.Contains(out, "be4fore"); {
		m := u.readType("pty.output")
		p, _ := c.Open(m["data"].(string))
		out += string(p)
	}

	u2 := newRawUser(t, url)
	u2.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, WingID: "box", PublicKey: wp.PublicKeyString(u2.key), Cols: 80, Rows: 24})
	m = u2.readType("pty.started")
	c2, _ := wp.NewCipher(u2.key, m["public_key"].(string), wp.InfoPTY)
	g.set(true)
	// Either the replay's write is stuck now, or (if it went out before
	// the gate shut) this input's output's write will be.
	u2.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c2.Seal([]byte("echo x\n"))})
	select {
	case <-g.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("no wing write reached the shut gate")
	}
	flag := filepath.Join(t.TempDir(), "flag")
	deadline := time.Now().Add(20 * time.Second)
	for {
		u2.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c2.Seal([]byte("touch " + flag + "\n"))})
		if _, err := os.Stat(flag); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("input did not reach the session while a write to the relay was stuck")
		}
		time.Sleep(100 * time.Millisecond)
	}
	g.mu.Lock()
	dials := g.dials
	g.mu.Unlock()
	if dials != 1 {
		t.Fatalf("the wing reconnected (%d dials): the stuck write timed out instead of input going through", dials)
	}
	g.set(false)
	u2.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c2.Seal([]byte("echo af$((3+3))ter\n"))})
	for out := ""; !strings.Contains(out, "af6ter"); {
		m := u2.read()
		switch m["type"] {
		case "wing.offline", "pty.exited", "error":
			t.Fatalf("after the gate opened: %v", m)
		case "pty.output":
			p, err := c2.Open(m["data"].(string))
			if err != nil {
				t.Fatal(err)
			}
			if m["compressed"] == true {
				if p, err = wp.DecompressChunk(p); err != nil {
					t.Fatal(err)
				}
			}
			out += string(p)
		}
	}
}
