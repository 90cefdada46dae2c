package wingagent

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// jwtFor is a wing token shaped like the relays' (a JWT whose sub is the
// owner); the wing reads sub without checking the signature.
func jwtFor(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc([]byte(`{"sub":"`+sub+`","kind":"wing"}`)) + ".c2ln"
}

// rawSession is a PTY session driven through a hubtest.RawRelay.
type rawSession struct {
	t   *testing.T
	w   *hubtest.RawWing
	a   *Agent
	sid string
	c   *wp.Cipher
	pub string
	out strings.Builder
}

func startRawSession(t *testing.T, w *hubtest.RawWing, a *Agent, sid string, start map[string]any) *rawSession {
	t.Helper()
	key, _ := wp.GenerateKey()
	s := &rawSession{t: t, w: w, a: a, sid: sid, pub: wp.PublicKeyString(key)}
	c, err := wp.NewCipher(key, a.PublicKey(), wp.InfoPTY)
	if err != nil {
		t.Fatal(err)
	}
	s.c = c
	start["type"], start["session_id"], start["public_key"] = "pty.start", sid, s.pub
	start["cols"], start["rows"] = 80, 24
	w.Send(start)
	if m := w.Next(); m["type"] != "pty.started" {
		t.Fatalf("pty.start %v: got %v", start, m)
	}
	return s
}

// wait reads output until it holds want; a pty.exited fails the test.
func (s *rawSession) wait(want string) {
	s.t.Helper()
	for !strings.Contains(s.out.String(), want) {
		m := s.w.Next()
		switch m["type"] {
		case "pty.output":
			p, err := s.c.Open(m["data"].(string))
			if err != nil {
				s.t.Fatal(err)
			}
			s.out.Write(p)
		case "pty.exited":
			s.t.Fatalf("session exited (%v) while waiting for %q; output %q", m, want, s.out.String())
		}
	}
}

func (s *rawSession) input(line string, extra map[string]any) {
	f := map[string]any{"type": "pty.input", "session_id": s.sid, "data": s.c.Seal([]byte(line + "\n"))}
	for k, v := range extra {
		f[k] = v
	}
	s.w.Send(f)
}

// TestStrangerCannotOperateSession: a relay that no longer knows a session
// (restarted) routes frames by ?wing_id= with the sender's relay-set
// identity. The wing refuses kill and resize from a user who may not
// control the session, and a kill that names nobody; the session's user
// still can.
func TestStrangerCannotOperateSession(t *testing.T) {
	rr := hubtest.StartRaw(t)
	rr.Registered = map[string]any{"type": "registered", "wing_id": "c1", "user_id": "alice"}
	a := startAgent(t, rr.URL, func(c *Config) {
		c.Token = "opaque"
		c.Access = Access{Locked: true, Allow: []AllowEntry{{User: "bob"}}}
	})
	w := rr.Accept(t)
	s := startRawSession(t, w, a, "s1", map[string]any{"user_id": "alice", "org_role": "owner"})
	s.input("echo up-$((1+1))", nil)
	s.wait("up-2")

	// mallory (not allowed), bob (allowed, but not his session), and a
	// kill without identity; mallory even claims to be the owner.
	for _, f := range []map[string]any{
		{"type": "pty.resize", "session_id": "s1", "cols": 11, "rows": 7, "user_id": "mallory", "org_role": "owner"},
		{"type": "pty.kill", "session_id": "s1", "user_id": "mallory", "org_role": "owner"},
		{"type": "pty.resize", "session_id": "s1", "cols": 12, "rows": 8, "user_id": "bob"},
		{"type": "pty.kill", "session_id": "s1", "user_id": "bob"},
		{"type": "pty.kill", "session_id": "s1"},
	} {
		w.Send(f)
	}
	// Frames are handled in order: the session is still there and its
	// size unchanged.
	s.input("stty size; echo alive-$((2+3))", map[string]any{"user_id": "alice"})
	s.wait("alive-5")
	if !strings.Contains(s.out.String(), "24 80") {
		t.Fatalf("a stranger's resize reached the PTY: %q", s.out.String())
	}
	// alice's own resize and kill work.
	w.Send(map[string]any{"type": "pty.resize", "session_id": "s1", "cols": 90, "rows": 30, "user_id": "alice"})
	s.input("stty size", map[string]any{"user_id": "alice"})
	s.wait("30 90")
	w.Send(map[string]any{"type": "pty.kill", "session_id": "s1", "user_id": "alice"})
	if m := w.ReadType("pty.exited"); m["session_id"] != "s1" {
		t.Fatalf("exited: %v", m)
	}
}

// TestOwnerByUserIDWithoutOrgRole: wingthing's relay sets user_id on
// pty.start and pty.attach but no org_role. The wing knows its owner from
// its token's sub and serves them; org_role does not make a stranger the
// owner.
func TestOwnerByUserIDWithoutOrgRole(t *testing.T) {
	rr := hubtest.StartRaw(t) // registered carries no user_id
	a := startAgent(t, rr.URL, func(c *Config) { c.Token = jwtFor("alice") })
	w := rr.Accept(t)
	s := startRawSession(t, w, a, "s1", map[string]any{"user_id": "alice"})
	s.input("echo hi-$((3+4))", nil)
	s.wait("hi-7")

	// Reattach with a new key, user_id only.
	key, _ := wp.GenerateKey()
	w.Send(map[string]any{"type": "pty.attach", "session_id": "s1", "public_key": wp.PublicKeyString(key), "user_id": "alice"})
	if m := w.NextNot("pty.output"); m["type"] != "pty.started" {
		t.Fatalf("reattach without org_role: %v", m)
	}

	// A stranger that a relay calls "owner" is not the owner.
	w.Send(map[string]any{"type": "pty.start", "session_id": "s2", "public_key": s.pub, "user_id": "mallory", "org_role": "owner"})
	if m := w.ReadType("pty.exited"); m["session_id"] != "s2" || m["error"] != "not_allowed" {
		t.Fatalf("mallory as owner: %v", m)
	}
	w.Send(map[string]any{"type": "pty.attach", "session_id": "s1", "public_key": s.pub, "user_id": "mallory", "org_role": "owner"})
	if m := w.ReadType("pty.exited"); m["session_id"] != "s1" || m["error"] != "not_allowed" {
		t.Fatalf("mallory's attach: %v", m)
	}
}

// TestOwnerFromRegistered: with an opaque token, the owner is the user the
// relay names in registered (warren's hub does).
func TestOwnerFromRegistered(t *testing.T) {
	rr := hubtest.StartRaw(t)
	rr.Registered = map[string]any{"type": "registered", "wing_id": "c1", "user_id": "alice"}
	a := startAgent(t, rr.URL, func(c *Config) { c.Token = "opaque" })
	w := rr.Accept(t)
	startRawSession(t, w, a, "s1", map[string]any{"user_id": "alice"})
	if got := tokenSubject(jwtFor("bob")); got != "bob" {
		t.Fatalf("tokenSubject = %q", got)
	}
	for _, tok := range []string{"opaque", "a.b", "a.!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte("[]")) + ".c"} {
		if got := tokenSubject(tok); got != "" {
			t.Fatalf("tokenSubject(%q) = %q, want \"\"", tok, got)
		}
	}
}

// FuzzTokenSubject: any token string yields a subject or "", never a panic.
func FuzzTokenSubject(f *testing.F) {
	f.Add(jwtFor("alice"))
	f.Add("opaque")
	f.Add("a..c")
	f.Fuzz(func(t *testing.T, tok string) {
		if sub := tokenSubject(tok); sub != "" && strings.Count(tok, ".") != 2 {
			t.Fatalf("subject %q from a token that is not a JWT", sub)
		}
	})
}
