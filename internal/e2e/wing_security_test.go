package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// mintWing mints a wing token (not bound to a wing id) for user.
func (e *wingEnv) mintWing(t *testing.T, user string) string {
	t.Helper()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	r := run(t, t.TempDir(), env, "relay-server", "wings", "token", "--server", e.url, "--kind", "wing", "--user", user)
	r.wantCode(t, 0, "mint wing token for "+user)
	return strings.TrimSpace(r.stdout)
}

// serveWing runs wing serve with token, an identity key file and optional
// config file against relayURL, without waiting for anything.
func serveWing(t *testing.T, relayURL, token, keyFile, cfgFile string, args ...string) *daemon {
	t.Helper()
	env := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+token, "SHELL=/bin/sh", "PS1=$ ")
	all := []string{"serve", "--relay", relayURL, "--identity-key", keyFile, "--log-format", "json"}
	if cfgFile != "" {
		all = append(all, "-c", cfgFile)
	}
	return start(t, t.TempDir(), env, "wing", append(all, args...)...)
}

// lockedCfg writes the wing config of issue 13: alicebox, locked, alice
// allowed.
func lockedCfg(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wing.yaml")
	s := "serve:\n  wing_id: alicebox\n  locked: true\n  allow:\n    - user: alice\n"
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// userHome is a fixed HOME for one user's wing commands, so known_wings
// persists between them.
func userHome(t *testing.T, tok string) []string {
	home := t.TempDir()
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "xdg"),
		"WARREN_WING_USER_TOKEN=" + tok}, coverEnv()...)
}

var ownerRefusedRE = regexp.MustCompile(`relay error.*belongs to another user`)

// restartRelay stops relay-server gracefully and starts it again on the
// same port and database.
func (e *wingEnv) restartRelay(t *testing.T) {
	t.Helper()
	e.relay.cmd.Process.Signal(syscall.SIGTERM)
	if code := e.relay.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("relay stop: exit %d", code)
	}
	e.startRelay(t)
}

// waitCount polls l until re matches at least n lines.
func waitCount(t *testing.T, l *lines, re *regexp.Regexp, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(re.FindAllStringIndex(l.String(), -1)) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d lines matching %q within %s:\n%s", n, re, timeout, l)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWingIDHijackRefused (issue 13, item 1): mallory's wing, with a wing
// token of his own and the same wing_id, is refused, and alice's wing
// keeps every one of her sessions; the ownership survives a relay restart.
func TestWingIDHijackRefused(t *testing.T) {
	e := startWingRelay(t)
	malTok := e.mintWing(t, "mallory")
	cfg := lockedCfg(t)
	aliceKey := filepath.Join(t.TempDir(), "alice.key")
	alice := serveWing(t, e.url, e.wingTok, aliceKey, cfg)
	alice.stderr.wait(t, registeredRE, 30*time.Second)

	mallory := serveWing(t, e.url, malTok, filepath.Join(t.TempDir(), "mal.key"), cfg)
	// Refused with a clear error, and again when it retries.
	mallory.stderr.wait(t, ownerRefusedRE, 30*time.Second)
	waitCount(t, mallory.stderr, ownerRefusedRE, 2, 30*time.Second)
	if strings.Contains(mallory.stderr.String(), "registered with the relay") {
		t.Fatalf("mallory's wing registered:\n%s", mallory.stderr)
	}
	e.relay.stderr.wait(t, regexp.MustCompile(`wing registration refused: the wing id belongs to another user.*"owner":"alice"`), 10*time.Second)

	env := userHome(t, e.userTok)
	for i := range 8 {
		r := run(t, t.TempDir(), env, "wing", "attach", "--relay", e.url, "--command", "echo via-$((40+2))", "alicebox")
		if r.code != 0 || !strings.Contains(r.stdout, "via-42") {
			t.Fatalf("attach %d: exit %d, stdout %q, stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	if strings.Contains(mallory.stderr.String(), "session started") {
		t.Fatalf("mallory's wing got alice's session:\n%s", mallory.stderr)
	}
	if n := strings.Count(alice.stderr.String(), "registered with the relay"); n != 1 {
		t.Fatalf("alice's wing registered %d times (kicked off?):\n%s", n, alice.stderr)
	}

	// The relay restarts with alice's wing gone: mallory still cannot
	// take the id, which is kept in the relay's database.
	alice.cmd.Process.Kill()
	<-alice.done
	before := len(ownerRefusedRE.FindAllStringIndex(mallory.stderr.String(), -1))
	e.restartRelay(t)
	waitCount(t, mallory.stderr, ownerRefusedRE, before+1, 30*time.Second)
	if strings.Contains(mallory.stderr.String(), "registered with the relay") {
		t.Fatalf("mallory's wing registered after the relay restart:\n%s", mallory.stderr)
	}
	// alice's wing, with a new socket, registers as before.
	alice = serveWing(t, e.url, e.wingTok, aliceKey, cfg)
	alice.stderr.wait(t, registeredRE, 30*time.Second)
	r := run(t, t.TempDir(), env, "wing", "attach", "--relay", e.url, "--command", "echo back-$((1+1))", "alicebox")
	if r.code != 0 || !strings.Contains(r.stdout, "back-2") {
		t.Fatalf("attach after restart: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// TestWingKnownKeys (issue 13, item 1): wing remembers a wing's identity
// key on first use and refuses a changed one with a message naming the
// wing, both fingerprints and the command that accepts the new key.
func TestWingKnownKeys(t *testing.T) {
	e := startWingRelay(t)
	env := userHome(t, e.userTok)
	w := serveWing(t, e.url, e.wingTok, filepath.Join(t.TempDir(), "k1"), "", "--wing-id", "kbox")
	w.stderr.wait(t, registeredRE, 30*time.Second)
	oldPub := w.stderr.wait(t, regexp.MustCompile(`"public_key":"([^"]+)"`), 5*time.Second)[1]
	r := run(t, t.TempDir(), env, "wing", "attach", "--relay", e.url, "--command", "echo one-$((0+1))", "kbox")
	if r.code != 0 || !strings.Contains(r.stdout, "one-1") {
		t.Fatalf("first attach: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, t.TempDir(), env, "wing", "trust", "--relay", e.url, "-o", "json")
	r.wantCode(t, 0, "wing trust")
	var known []struct {
		WingID      string `json:"wing_id"`
		PublicKey   string `json:"public_key"`
		Fingerprint string `json:"fingerprint"`
	}
	decodeJSON(t, r.stdout, &known)
	if len(known) != 1 || known[0].WingID != "kbox" || known[0].PublicKey != oldPub || !strings.HasPrefix(known[0].Fingerprint, "SHA256:") {
		t.Fatalf("wing trust: %s", r.stdout)
	}

	// The wing comes back with another key (same owner: it registers).
	w.cmd.Process.Kill()
	<-w.done
	w = serveWing(t, e.url, e.wingTok, filepath.Join(t.TempDir(), "k2"), "", "--wing-id", "kbox")
	w.stderr.wait(t, registeredRE, 30*time.Second)
	for _, args := range [][]string{
		{"attach", "--relay", e.url, "--command", "echo two", "kbox"},
		{"attach", "--relay", e.url, "kbox"},
		{"ls", "--relay", e.url},
		{"info", "--relay", e.url, "kbox"},
	} {
		r = run(t, t.TempDir(), env, "wing", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "wing kbox presents a different identity key") ||
			!strings.Contains(r.stderr, known[0].Fingerprint) || !strings.Contains(r.stderr, "wing trust --reset kbox") {
			t.Fatalf("wing %v with a changed key: exit %d, stdout %q, stderr %q", args[0], r.code, r.stdout, r.stderr)
		}
		if strings.Contains(r.stdout, "two") {
			t.Fatal("the command ran on the changed wing")
		}
	}
	r = run(t, t.TempDir(), env, "wing", "trust", "--relay", e.url, "--reset", "kbox")
	r.wantCode(t, 0, "wing trust --reset")
	r = run(t, t.TempDir(), env, "wing", "attach", "--relay", e.url, "--command", "echo three-$((1+2))", "kbox")
	if r.code != 0 || !strings.Contains(r.stdout, "three-3") {
		t.Fatalf("attach after reset: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// rawUserSocket opens /ws/pty?wing_id= as a browser would, with tok.
func rawUserSocket(t *testing.T, relayURL, wingID, tok string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(relayURL, "http", "ws", 1)+"/ws/pty?wing_id="+wingID,
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws
}

func sendJSON(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// TestWingStrangerCannotKillAfterRelayRestart (issue 13, item 2): after a
// relay restart the relay no longer knows alice's session and routes
// mallory's pty.resize and pty.kill by ?wing_id=; the wing refuses them
// and the session lives on.
func TestWingStrangerCannotKillAfterRelayRestart(t *testing.T) {
	e := startWingRelay(t)
	malTok := e.mintUser(t, "mallory")
	alice := serveWing(t, e.url, e.wingTok, filepath.Join(t.TempDir(), "k"), lockedCfg(t))
	alice.stderr.wait(t, registeredRE, 30*time.Second)
	env := userHome(t, e.userTok)

	tm := startInPTY(t, env, 30, 100, "wing", "attach", "--relay", e.url, "alicebox")
	sid := tm.wait(t, 0, regexp.MustCompile(`session ([0-9a-f]{8}) on alicebox`), 30*time.Second)[1]
	at := tm.typeLine(t, "echo up-$((1+1))")
	tm.wait(t, at, regexp.MustCompile(`up-2`), 20*time.Second)
	tm.ptmx.Write([]byte{0x1d}) // detach: the session keeps running
	if code := tm.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("detach: exit %d", code)
	}

	e.restartRelay(t)
	waitCount(t, alice.stderr, registeredRE, 2, 30*time.Second)

	ws := rawUserSocket(t, e.url, "alicebox", malTok)
	sendJSON(t, ws, map[string]any{"type": "pty.resize", "session_id": sid, "cols": 13, "rows": 7, "user_id": "alice", "org_role": "owner"})
	sendJSON(t, ws, map[string]any{"type": "pty.kill", "session_id": sid, "user_id": "alice", "org_role": "owner"})
	m := alice.stderr.wait(t, regexp.MustCompile(`session operation refused.*"type":"pty.kill"|"msg":"session exited"`), 20*time.Second)
	if strings.Contains(m[0], "session exited") {
		t.Fatalf("mallory killed alice's session:\n%s", alice.stderr)
	}
	if !regexp.MustCompile(`session operation refused.*"type":"pty.resize".*"user":"mallory"`).MatchString(alice.stderr.String()) {
		t.Fatalf("mallory's resize was not refused:\n%s", alice.stderr)
	}

	// alice reattaches: the session is alive.
	tm = startInPTY(t, env, 30, 100, "wing", "attach", "--relay", e.url, "--session", sid, "alicebox")
	tm.wait(t, 0, regexp.MustCompile(`up-2`), 30*time.Second)
	at = tm.typeLine(t, "echo alive-$((2+3))")
	tm.wait(t, at, regexp.MustCompile(`alive-5`), 20*time.Second)
	tm.typeLine(t, "exit 3")
	if code := tm.exitCode(t, 20*time.Second); code != 3 {
		t.Fatalf("attach exit %d, want 3", code)
	}
}

// TestWingOwnerWithoutOrgRole (issue 13, item 9): through a relay that
// sets user_id but no org_role on pty.start and pty.attach (as
// wingthing's does), wing serve recognises its owner by user_id, from its
// token, and serves and reattaches their session.
func TestWingOwnerWithoutOrgRole(t *testing.T) {
	e := startWingRelay(t) // mints alice's wing token
	rr := hubtest.StartRaw(t)
	serveWing(t, rr.URL, e.wingTok, filepath.Join(t.TempDir(), "k"), "", "--wing-id", "box9")
	w := rr.Accept(t)
	wingPub, _ := w.Register["public_key"].(string)

	key, _ := wp.GenerateKey()
	w.Send(map[string]any{"type": "pty.start", "session_id": "s9", "public_key": wp.PublicKeyString(key), "user_id": "alice", "cols": 80, "rows": 24})
	if m := w.Next(); m["type"] != "pty.started" || m["public_key"] != wingPub {
		t.Fatalf("pty.start without org_role: %v", m)
	}
	c, err := wp.NewCipher(key, wingPub, wp.InfoPTY)
	if err != nil {
		t.Fatal(err)
	}
	w.Send(map[string]any{"type": "pty.input", "session_id": "s9", "data": c.Seal([]byte("echo nine-$((4+5))\n"))})
	var out strings.Builder
	for !strings.Contains(out.String(), "nine-9") {
		m := w.ReadType("pty.output")
		p, err := c.Open(m["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		out.Write(p)
	}

	key2, _ := wp.GenerateKey()
	w.Send(map[string]any{"type": "pty.attach", "session_id": "s9", "public_key": wp.PublicKeyString(key2), "user_id": "alice"})
	if m := w.NextNot("pty.output"); m["type"] != "pty.started" || m["session_id"] != "s9" {
		t.Fatalf("reattach without org_role: %v", m)
	}
	c2, _ := wp.NewCipher(key2, wingPub, wp.InfoPTY)
	for {
		m := w.ReadType("pty.output")
		p, err := c2.Open(m["data"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if m["compressed"] == true {
			if p, err = wp.DecompressChunk(p); err != nil {
				t.Fatal(err)
			}
		}
		if strings.Contains(string(p), "nine-9") {
			break
		}
	}
}
