package wingagent

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// rawUser is a browser-like user socket speaking raw protocol frames.
type rawUser struct {
	t   *testing.T
	ws  *websocket.Conn
	key *ecdh.PrivateKey
	in  chan map[string]any
}

func newRawUser(t *testing.T, url string) *rawUser {
	t.Helper()
	return newRawUserAs(t, url, "alice")
}

// sealCommand encrypts a pty.start command line for the wing.
func (u *rawUser) sealCommand(a *Agent, cmd string) string {
	c, err := wp.NewCipher(u.key, a.PublicKey(), wp.InfoPTY)
	if err != nil {
		u.t.Fatal(err)
	}
	return c.Seal([]byte(cmd))
}

func (u *rawUser) send(v any) {
	b, _ := json.Marshal(v)
	if err := u.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		u.t.Fatal(err)
	}
}

func (u *rawUser) read() map[string]any {
	u.t.Helper()
	select {
	case m, ok := <-u.in:
		if !ok {
			u.t.Fatal("socket closed")
		}
		return m
	case <-time.After(10 * time.Second):
		u.t.Fatal("no frame within 10s")
	}
	return nil
}

func TestSessionWithoutKeyIsRefused(t *testing.T) {
	url := testRelay(t)
	startAgent(t, url, nil)
	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart})
	m := u.read()
	if m["type"] != "pty.exited" || !strings.Contains(m["error"].(string), "encryption is required") {
		t.Fatalf("got %v", m)
	}
}

// TestReplayFormat is interop check 6 of wing.md: more than 300 KiB of
// output, then an attach with a new key gets pty.started and then at least
// three compressed chunks, each an independent gzip stream of at most
// 128 KiB, whose concatenation is the session's output.
func TestReplayFormat(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart, PublicKey: wp.PublicKeyString(u.key), Cols: 80, Rows: 24})
	m := u.read()
	if m["type"] != "pty.started" {
		t.Fatalf("got %v", m)
	}
	sid := m["session_id"].(string)
	c, err := wp.NewCipher(u.key, m["public_key"].(string), wp.InfoPTY)
	if err != nil {
		t.Fatal(err)
	}
	u.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c.Seal([]byte("head -c 400000 /dev/zero | tr '\\0' a; echo; echo E$((1+1))ND\n"))})
	var live []byte
	for !bytes.Contains(live, []byte("E2ND\r\n$ ")) {
		m := u.read()
		if m["type"] != "pty.output" {
			continue
		}
		if m["compressed"] == true {
			t.Fatal("live output marked compressed")
		}
		p, err := c.Open(m["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > wp.ChunkSize {
			t.Fatalf("live chunk of %d bytes", len(p))
		}
		live = append(live, p...)
	}
	// No wait needed before reattaching: the wing adds output to the
	// replay buffer before it sends it (session.output), so the replay
	// holds all of live; anything printed after would make it longer and
	// fail the comparison below.

	u2 := newRawUser(t, url)
	u2.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, WingID: "box", PublicKey: wp.PublicKeyString(u2.key)})
	m = u2.read()
	if m["type"] != "pty.started" || m["session_id"] != sid {
		t.Fatalf("first frame after attach: %v", m)
	}
	c2, _ := wp.NewCipher(u2.key, m["public_key"].(string), wp.InfoPTY)
	var replay []byte
	chunks := 0
	for len(replay) < len(live) {
		m := u2.read()
		if m["type"] != "pty.output" || m["compressed"] != true {
			t.Fatalf("replay frame: %v", m)
		}
		z, err := c2.Open(m["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		p, err := wp.DecompressChunk(z)
		if err != nil {
			t.Fatal(err)
		}
		chunks++
		replay = append(replay, p...)
	}
	if chunks < 3 || !bytes.Equal(replay, live) {
		t.Fatalf("%d chunks, %d bytes replayed of %d live; equal=%v", chunks, len(replay), len(live), bytes.Equal(replay, live))
	}
	// The old key no longer gets output; the new one does, and input too.
	u2.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: c2.Seal([]byte("exit 9\n"))})
	for {
		m := u2.read()
		if m["type"] == "pty.exited" {
			if m["exit_code"] != float64(9) {
				t.Fatalf("exit: %v", m)
			}
			break
		}
	}
	// Input under the old key would have been dropped, not run.
	if a.Sessions() != 0 {
		deadline := time.Now().Add(5 * time.Second)
		for a.Sessions() != 0 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestAttentionOnBell(t *testing.T) {
	url, reg := testRelayWithMetrics(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart, PublicKey: wp.PublicKeyString(u.key), Command: u.sealCommand(a, "printf '\\a'; sleep 0.2; printf '\\a'; sleep 0.2; exit 0")})
	// session.attention reaches the relay, which tells the user the
	// session id and nonce only (warren; the wing's cwd and agent stay
	// with the relay); the session still ends normally.
	seen := 0
	for {
		m := u.read()
		if m["type"] == "session.attention" {
			seen++
			if _, ok := m["cwd"]; ok || m["nonce"] == "" || m["session_id"] == "" {
				t.Fatalf("attention notice %v", m)
			}
		}
		if m["type"] == "pty.exited" {
			break
		}
	}
	if seen != 1 {
		t.Fatalf("attention notices %d, want 1", seen)
	}
	if n := counter(t, reg, "warren_wing_hub_attention_total"); n != 1 {
		t.Fatalf("attention events at the relay: %v, want 1", n)
	}
}

func TestAuthRejectedStops(t *testing.T) {
	url := testRelay(t)
	key, _ := wp.GenerateKey()
	a, _ := New(Config{RelayURL: url, Token: "nope", WingID: "box", Key: key}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Run(ctx); !errors.Is(err, ErrAuthRejected) {
		t.Fatalf("Run: %v", err)
	}
}

func TestIdentityFile(t *testing.T) {
	p := t.TempDir() + "/d/id.key"
	k1, err := LoadOrCreateIdentity(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateIdentity(p)
	if err != nil || !k1.Equal(k2) {
		t.Fatal("key not persistent", err)
	}
}

func TestKill(t *testing.T) {
	url := testRelay(t)
	a := startAgent(t, url, nil)
	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart, PublicKey: wp.PublicKeyString(u.key), Command: u.sealCommand(a, "sleep 100")})
	m := u.read()
	if m["type"] != "pty.started" {
		t.Fatalf("got %v", m)
	}
	u.send(wp.SessionRef{Type: wp.TypePTYKill, SessionID: m["session_id"].(string)})
	for {
		m := u.read()
		if m["type"] == "pty.exited" {
			if code := m["exit_code"].(float64); code < 128 {
				t.Fatalf("killed session exit code %v, want 128+signal", code)
			}
			break
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Sessions() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("session not removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
