package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestProbeWing runs probe's wing_presence and wing_session checks against
// a real relay-server and wing serve: OK while the wing is up; CRITICAL
// with a 401 for refused tokens; CRITICAL "not connected" once the wing
// stops; "connection refused" once the relay is gone. No token ever shows
// in stdout, stderr, the textfile or the artifacts.
func TestProbeWing(t *testing.T) {
	e := startWingRelay(t)
	wingd := e.startWing(t, e.url, "box")
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "user-token")
	if err := os.WriteFile(tokFile, []byte(e.userTok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const wrongTok = "wrong-user-token-4321"
	secrets := []string{e.userTok, e.wingTok, e.admin, wrongTok}
	write := func(name, checks string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("checks:\n"+checks), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// The wing token given as a user token: the relay tells the kinds apart.
	env := cleanEnv(t, "PROBE_WING_TOKEN="+e.userTok, "PROBE_NOT_A_USER_TOKEN="+e.wingTok)
	good := write("good.yaml", fmt.Sprintf(`  - name: wing-box
    kind: wing_presence
    url: %[1]s
    user_token_file: %[2]s
    wing: box
  - name: wing-any
    kind: wing_presence
    url: %[1]s
    user_token_env: PROBE_WING_TOKEN
    min_wings: 1
  - name: wing-session
    kind: wing_session
    url: %[1]s
    user_token_file: %[2]s
    wing: box
    timeout: 20s
`, e.url, tokFile))
	textfile := filepath.Join(dir, "probe.prom")
	arts := filepath.Join(dir, "artifacts")

	// All up: OK, with the session's stages.
	r := run(t, dir, env, "probe", "-c", good, "run")
	r.wantCode(t, 0, "probe run, wing up")
	if !strings.HasPrefix(r.stdout, "OK - 3 checks: 3 OK") {
		t.Errorf("summary:\n%s", r.stdout)
	}
	r = run(t, dir, env, "probe", "-c", good, "run", "-o", "json", "--textfile", textfile, "--artifacts", arts)
	r.wantCode(t, 0, "probe run -o json, wing up")
	var rep probeJSON
	decodeJSON(t, r.stdout, &rep)
	want := map[string]string{
		"wing-box":     "wing box (",
		"wing-any":     "1 wings connected: box",
		"wing-session": "nonce returned decrypted, exit code 0",
	}
	for _, c := range rep.Checks {
		if c.Status != "OK" || !strings.Contains(c.Message, want[c.Name]) {
			t.Errorf("%s: %s %q, want OK containing %q", c.Name, c.Status, c.Message, want[c.Name])
		}
	}
	if len(rep.Checks) != 3 {
		t.Fatalf("report: %s", r.stdout)
	}
	sess := rep.Checks[2]
	var stages []string
	for _, s := range sess.Stages {
		stages = append(stages, s.Name)
	}
	if strings.Join(stages, ",") != "lookup,start,exchange" || sess.Details["wing"] != "box" || sess.Details["exit_code"] != "0" {
		t.Errorf("wing-session stages %v details %v", stages, sess.Details)
	}
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{
		`warren_probe_check_status{check="wing-session",kind="wing_session"} 0`,
		`warren_probe_check_stage_duration_seconds{check="wing-session",kind="wing_session",stage="exchange"} `,
		`warren_probe_check_status{check="wing-box",kind="wing_presence"} 0`,
		"warren_probe_status 0\n",
	} {
		if !strings.Contains(string(prom), w) {
			t.Errorf("textfile lacks %q:\n%s", w, prom)
		}
	}
	for what, text := range map[string]string{"stdout": r.stdout, "stderr": r.stderr, "textfile": string(prom)} {
		assertNoSecrets(t, what, text, secrets)
	}

	// Refused tokens and an unknown wing: CRITICAL, saying why.
	bad := write("bad.yaml", fmt.Sprintf(`  - name: presence-wrong-token
    kind: wing_presence
    url: %[1]s
    user_token: %[2]s
  - name: session-wing-token
    kind: wing_session
    url: %[1]s
    user_token_env: PROBE_NOT_A_USER_TOKEN
    wing: box
  - name: presence-no-such-wing
    kind: wing_presence
    url: %[1]s
    user_token_env: PROBE_WING_TOKEN
    wing: nope
  - name: session-no-such-wing
    kind: wing_session
    url: %[1]s
    user_token_file: %[3]s
    wing: nope
`, e.url, wrongTok, tokFile))
	badArts := filepath.Join(dir, "artifacts-bad")
	badProm := filepath.Join(dir, "bad.prom")
	r = run(t, dir, env, "probe", "-c", bad, "run", "-o", "json", "--artifacts", badArts, "--textfile", badProm)
	r.wantCode(t, 2, "probe run, bad tokens")
	rep = probeJSON{}
	decodeJSON(t, r.stdout, &rep)
	wantBad := map[string][]string{
		"presence-wrong-token":  {"list", "HTTP 401"},
		"session-wing-token":    {"lookup", "HTTP 401"},
		"presence-no-such-wing": {"presence", "wing nope is not connected to the relay (connected: box)"},
		"session-no-such-wing":  {"lookup", "wing nope is not connected to the relay (connected: box)"},
	}
	for _, c := range rep.Checks {
		w := wantBad[c.Name]
		if c.Status != "CRITICAL" || c.Stage != w[0] || !strings.Contains(c.Message, w[1]) {
			t.Errorf("%s: %s stage %q %q, want CRITICAL stage %q containing %q", c.Name, c.Status, c.Stage, c.Message, w[0], w[1])
		}
	}
	if len(rep.Checks) != len(wantBad) {
		t.Fatalf("report: %s", r.stdout)
	}
	data, _ := os.ReadFile(filepath.Join(badArts, "presence-wrong-token", "probe-artifact.json"))
	if !strings.Contains(string(data), `"user_token": "<redacted:user_token>"`) || !strings.Contains(string(data), "HTTP 401") {
		t.Errorf("artifact:\n%s", data)
	}
	if n := assertTreeHasNoSecrets(t, badArts, secrets); n != len(wantBad) {
		t.Errorf("%d artifacts, want %d", n, len(wantBad))
	}
	prom, _ = os.ReadFile(badProm)
	for what, text := range map[string]string{"stdout": r.stdout, "stderr": r.stderr, "textfile": string(prom)} {
		assertNoSecrets(t, what, text, secrets)
	}

	// The wing stops: every check is CRITICAL, naming the missing wing.
	wingd.cmd.Process.Signal(syscall.SIGTERM)
	if c := wingd.exitCode(t, 20*time.Second); c != 0 {
		t.Errorf("wing serve exit %d\n%s", c, wingd.stderr)
	}
	waitWingsListed(t, e.url, e.userTok, 0)
	downArts := filepath.Join(dir, "artifacts-down")
	r = run(t, dir, env, "probe", "-c", good, "run", "-o", "json", "--artifacts", downArts)
	r.wantCode(t, 2, "probe run, wing stopped")
	rep = probeJSON{}
	decodeJSON(t, r.stdout, &rep)
	wantDown := map[string]string{
		"wing-box":     "wing box is not connected to the relay (no wing of this user is)",
		"wing-any":     "no wing of this user is connected to the relay",
		"wing-session": "wing box is not connected to the relay",
	}
	for _, c := range rep.Checks {
		if c.Status != "CRITICAL" || !strings.Contains(c.Message, wantDown[c.Name]) {
			t.Errorf("%s: %s %q, want CRITICAL containing %q", c.Name, c.Status, c.Message, wantDown[c.Name])
		}
	}
	assertNoSecrets(t, "stdout", r.stdout, secrets)
	assertNoSecrets(t, "stderr", r.stderr, secrets)
	assertTreeHasNoSecrets(t, downArts, secrets)

	// The relay goes away: connection refused.
	e.relay.cmd.Process.Signal(syscall.SIGKILL)
	e.relay.exitCode(t, 10*time.Second)
	r = run(t, dir, env, "probe", "-c", good, "run")
	r.wantCode(t, 2, "probe run, relay down")
	if !strings.HasPrefix(r.stdout, "CRITICAL - 3 checks: 3 CRITICAL") || !strings.Contains(r.stdout, "connection refused") {
		t.Errorf("relay down:\n%s", r.stdout)
	}
	assertNoSecrets(t, "stdout", r.stdout, secrets)
	assertNoSecrets(t, "stderr", r.stderr, secrets)
}

// waitWingsListed waits until GET /api/app/wings lists n wings: a stopped
// wing's socket close reaches the relay a moment after the wing exits.
func waitWingsListed(t *testing.T, url, userTok string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequest("GET", url+"/api/app/wings", nil)
		req.Header.Set("Authorization", "Bearer "+userTok)
		resp, err := http.DefaultClient.Do(req)
		body := ""
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Count(body, `"wing_id"`) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay still lists %q (err %v), want %d wings", body, err, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
