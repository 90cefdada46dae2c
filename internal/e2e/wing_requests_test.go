package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mintUser mints a user token for user on e's relay.
func (e *wingEnv) mintUser(t *testing.T, user string) string {
	t.Helper()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	r := run(t, t.TempDir(), env, "relay-server", "wings", "token", "--server", e.url, "--kind", "user", "--user", user)
	r.wantCode(t, 0, "mint user token for "+user)
	return strings.TrimSpace(r.stdout)
}

// startWingConfig runs wing serve with a config file.
func (e *wingEnv) startWingConfig(t *testing.T, cfgFile string) *daemon {
	t.Helper()
	env := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.wingTok, "SHELL=/bin/sh", "PS1=$ ")
	d := start(t, t.TempDir(), env, "wing", "serve", "-c", cfgFile, "--relay", e.url,
		"--identity-key", filepath.Join(t.TempDir(), "id.key"), "--log-format", "json")
	d.stderr.wait(t, registeredRE, 30*time.Second)
	return d
}

func userEnvOf(t *testing.T, tok string) []string { return cleanEnv(t, "WARREN_WING_USER_TOKEN="+tok) }

// TestWingRequestsLockSpectate drives the request commands (info,
// sessions, ls-dir, kill, allow), a locked wing with an allow list that
// SIGHUP reloads without dropping the running session, and a read-only
// spectator, all through the built binaries.
func TestWingRequestsLockSpectate(t *testing.T) {
	e := startWingRelay(t)
	bobTok, carolTok := e.mintUser(t, "bob"), e.mintUser(t, "carol")
	cfgFile := filepath.Join(t.TempDir(), "wing.yaml")
	writeCfg := func(allow ...string) {
		s := "serve:\n  wing_id: box8\n  spectate: true\n  locked: true\n  allow:\n"
		for _, u := range allow {
			s += "    - user: " + u + "\n"
		}
		if err := os.WriteFile(cfgFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeCfg("bob")
	wingd := e.startWingConfig(t, cfgFile)
	alice := e.userEnv(t)

	r := run(t, t.TempDir(), alice, "wing", "info", "--relay", e.url, "box8", "-o", "json")
	r.wantCode(t, 0, "wing info")
	var info struct {
		Hostname     string `json:"hostname"`
		Locked       bool   `json:"locked"`
		Spectate     bool   `json:"spectate"`
		AllowedCount int    `json:"allowed_count"`
	}
	decodeJSON(t, r.stdout, &info)
	host, _ := os.Hostname()
	if info.Hostname != host || !info.Locked || !info.Spectate || info.AllowedCount != 1 {
		t.Fatalf("wing info: %s", r.stdout)
	}
	r = run(t, t.TempDir(), alice, "wing", "info", "--relay", e.url)
	if r.code != 0 || !regexp.MustCompile(`locked\s+true`).MatchString(r.stdout) {
		t.Fatalf("wing info (text): %d %s %s", r.code, r.stdout, r.stderr)
	}

	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "proj-a"), 0o755)
	os.Mkdir(filepath.Join(dir, "proj-b"), 0o755)
	os.Mkdir(filepath.Join(dir, "other"), 0o755)
	r = run(t, t.TempDir(), alice, "wing", "ls-dir", "--relay", e.url, filepath.Join(dir, "proj"), "-o", "json")
	r.wantCode(t, 0, "wing ls-dir")
	var ents struct {
		Entries []struct {
			Name string `json:"name"`
		} `json:"entries"`
	}
	decodeJSON(t, r.stdout, &ents)
	if len(ents.Entries) != 2 || ents.Entries[0].Name != "proj-a" {
		t.Fatalf("ls-dir: %s", r.stdout)
	}

	// A session in a terminal, and a spectator on it.
	ctl := startInPTY(t, alice, 24, 80, "wing", "attach", "--relay", e.url, "box8")
	sid := ctl.wait(t, 0, regexp.MustCompile(`session ([0-9a-f]{8}) on box8`), 30*time.Second)[1]
	at := ctl.typeLine(t, "echo one-$((1+1))")
	ctl.wait(t, at, regexp.MustCompile(`one-2`), 20*time.Second)

	r = run(t, t.TempDir(), alice, "wing", "sessions", "--relay", e.url, "box8", "-o", "json")
	r.wantCode(t, 0, "wing sessions")
	var list struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			UserID    string `json:"user_id"`
		} `json:"sessions"`
	}
	decodeJSON(t, r.stdout, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].SessionID != sid || list.Sessions[0].UserID != "alice" {
		t.Fatalf("sessions: %s", r.stdout)
	}

	spy := startInPTY(t, userEnvOf(t, bobTok), 24, 80, "wing", "attach", "--relay", e.url, "--spectate", "--session", sid, "--log-level", "debug", "box8")
	spy.wait(t, 0, regexp.MustCompile(`one-2`), 20*time.Second) // replay
	from := spy.len()
	spyLine := "echo SPY-$((5+5))"
	spy.typeLine(t, spyLine)
	// The spectator has read every key (line and \r) and not sent them; its
	// debug log says so with a running total.
	spy.wait(t, from, regexp.MustCompile(fmt.Sprintf(`keys not sent: spectating.*total=%d\b`, len(spyLine)+1)), 20*time.Second)
	at = ctl.typeLine(t, "echo two-$((2+1))")
	ctl.wait(t, at, regexp.MustCompile(`two-3`), 20*time.Second)
	spy.wait(t, from, regexp.MustCompile(`two-3`), 20*time.Second)
	if strings.Contains(ctl.output(), "SPY-10") || strings.Contains(spy.output(), "SPY-10") {
		t.Fatal("spectator keystrokes reached the session")
	}

	// carol is not allowed; bob is.
	r = run(t, t.TempDir(), userEnvOf(t, carolTok), "wing", "info", "--relay", e.url, "box8")
	if r.code != 1 || !strings.Contains(r.stderr, "not on its allow list") {
		t.Fatalf("carol: %d %q", r.code, r.stderr)
	}
	r = run(t, t.TempDir(), userEnvOf(t, bobTok), "wing", "info", "--relay", e.url, "box8")
	r.wantCode(t, 0, "bob wing info")
	r = run(t, t.TempDir(), userEnvOf(t, bobTok), "wing", "allow", "add", "--relay", e.url, "--wing", "box8", "carol")
	if r.code != 1 {
		t.Fatalf("bob edited the allow list: %d %q", r.code, r.stderr)
	}

	// SIGHUP with carol in the file: carol gets in, the session stays.
	writeCfg("bob", "carol")
	wingd.cmd.Process.Signal(syscall.SIGHUP)
	wingd.stderr.wait(t, regexp.MustCompile(`access updated.*"allowed_count":2`), 20*time.Second)
	r = run(t, t.TempDir(), userEnvOf(t, carolTok), "wing", "info", "--relay", e.url, "box8")
	r.wantCode(t, 0, "carol after reload")
	at = ctl.typeLine(t, "echo still-$((3+4))")
	ctl.wait(t, at, regexp.MustCompile(`still-7`), 20*time.Second)

	// The owner edits the list at run time.
	r = run(t, t.TempDir(), alice, "wing", "allow", "rm", "--relay", e.url, "--wing", "box8", "carol")
	r.wantCode(t, 0, "allow rm")
	r = run(t, t.TempDir(), alice, "wing", "allow", "ls", "--relay", e.url, "--wing", "box8", "-o", "json")
	r.wantCode(t, 0, "allow ls")
	if strings.Contains(r.stdout, "carol") || !strings.Contains(r.stdout, "bob") {
		t.Fatalf("allow ls: %s", r.stdout)
	}
	r = run(t, t.TempDir(), userEnvOf(t, carolTok), "wing", "info", "--relay", e.url, "box8")
	if r.code != 1 {
		t.Fatalf("carol after allow rm: %d", r.code)
	}

	// kill ends the session; attach exits with the signal's code; history.
	r = run(t, t.TempDir(), alice, "wing", "kill", "--relay", e.url, "--wing", "box8", sid)
	r.wantCode(t, 0, "wing kill")
	if code := ctl.exitCode(t, 20*time.Second); code < 128 {
		t.Fatalf("killed session: attach exit %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = run(t, t.TempDir(), alice, "wing", "sessions", "--history", "--relay", e.url, "box8", "-o", "json")
		r.wantCode(t, 0, "sessions --history")
		if strings.Contains(r.stdout, sid) && strings.Contains(r.stdout, `"total": 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history: %s", r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWingBandwidthCap: relay-server with wings.bandwidth.monthly_cap (set
// by env) cuts a user off with bandwidth.exceeded; wing attach says so.
func TestWingBandwidthCap(t *testing.T) {
	e := &wingEnv{admin: "wadm_test_bw", port: freePort(t), dataDir: t.TempDir()}
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin, "WARREN_RELAY_SERVER_WINGS_BANDWIDTH_MONTHLY_CAP=64KiB")
	e.relay = start(t, t.TempDir(), env, "relay-server", "--listen", fmt.Sprintf("127.0.0.1:%d", e.port),
		"--log-format", "json", "--data-dir", e.dataDir)
	e.url = e.relay.stderr.wait(t, listeningRE, 30*time.Second)[1]
	adm := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	r := run(t, t.TempDir(), adm, "relay-server", "wings", "token", "--server", e.url, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "mint wing token")
	e.wingTok = strings.TrimSpace(r.stdout)
	e.userTok = e.mintUser(t, "alice")
	e.startWing(t, e.url, "bw1")

	r = run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--command", "head -c 300000 /dev/zero | tr '\\0' x; sleep 30", "bw1")
	if r.code != 1 || !strings.Contains(r.stderr, "Monthly bandwidth limit exceeded") {
		t.Fatalf("attach past the cap: exit %d, stderr %q", r.code, r.stderr)
	}
	e.relay.stderr.wait(t, regexp.MustCompile(`monthly bandwidth cap reached`), 10*time.Second)
}
