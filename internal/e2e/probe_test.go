package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// probeLab is a relay-server with a tunnel whose host exposes an echo
// server and a port nobody listens on, plus the credentials probe uses.
type probeLab struct {
	relayURL   string
	relay      *daemon
	dir        string
	apiKey     string // tunnels + tickets scopes
	token      string // connect token of tunnel "web"
	keyFile    string
	tokenFile  string
	echoPort   int
	closedPort int
}

func newProbeLab(t *testing.T) *probeLab {
	t.Helper()
	relay, relayURL := startRelay(t, "admin-probe-k")
	lab := &probeLab{relay: relay, relayURL: relayURL, dir: t.TempDir()}
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-probe-k")
	r := run(t, lab.dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "probe",
		"--scope", "tunnels", "--scope", "tickets", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	lab.apiKey = k.Key
	run(t, lab.dir, admin, "relay-server", "tunnels", "create", "web", "--server", relayURL).wantCode(t, 0, "tunnels create")
	r = run(t, lab.dir, admin, "relay-server", "tunnels", "token", "web", "--scope", "connect", "--server", relayURL)
	r.wantCode(t, 0, "tunnels token")
	lab.token = strings.TrimSpace(r.stdout)

	lab.keyFile = filepath.Join(lab.dir, "api-key")
	lab.tokenFile = filepath.Join(lab.dir, "connect-token")
	os.WriteFile(lab.keyFile, []byte(lab.apiKey+"\n"), 0o600)
	os.WriteFile(lab.tokenFile, []byte(lab.token+"\n"), 0o600)

	lab.echoPort = int(echoServer(t))
	lab.closedPort = freePort(t)
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+lab.keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(lab.dir, "h.sock"))
	start(t, lab.dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "web",
		"--port", strconv.Itoa(lab.echoPort), "--port", strconv.Itoa(lab.closedPort))
	waitHostConnected(t, lab.dir, hostEnv, "web")
	return lab
}

// secrets are every credential the lab handed to probe.
func (l *probeLab) secrets() []string {
	return []string{l.apiKey, l.token, "admin-probe-k", "wrong-token-literal-1234", "wrong-api-key-5678"}
}

func (l *probeLab) writeConfig(t *testing.T, name, checks string) string {
	t.Helper()
	path := filepath.Join(l.dir, name)
	if err := os.WriteFile(path, []byte("checks:\n"+checks), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (l *probeLab) goodChecks() string {
	return fmt.Sprintf(`  - name: relay
    kind: relay_health
    url: %[1]s
  - name: ws-token
    kind: relay_ws
    url: %[1]s
    tunnel: web
    token_file: %[2]s
  - name: ws-key
    kind: relay_ws
    url: %[1]s
    tunnel: web
    mode: v1
    api_key_env: PROBE_KEY
  - name: tunnel-echo
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[4]d
    api_key_file: %[3]s
    timeout: 20s
  - name: tunnel-token
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[4]d
    token_file: %[2]s
    mode: v1
    timeout: 20s
  - name: tickets
    kind: ticket
    url: %[1]s
    api_key_env: PROBE_KEY
    bytes: 100000
    timeout: 20s
`, l.relayURL, l.tokenFile, l.keyFile, l.echoPort)
}

// assertNoSecrets fails if any secret (or a minted ticket, rly_...) is in text.
func assertNoSecrets(t *testing.T, what, text string, secrets []string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains the secret %.6s...:\n%s", what, s, text)
		}
	}
	if strings.Contains(text, "rly_") {
		t.Errorf("%s contains a ticket (rly_...):\n%s", what, text)
	}
}

// assertTreeHasNoSecrets greps every file under dir.
func assertTreeHasNoSecrets(t *testing.T, dir string, secrets []string) int {
	t.Helper()
	n := 0
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(p)
		assertNoSecrets(t, p, string(data), secrets)
		n++
		return nil
	})
	return n
}

type probeJSON struct {
	SchemaVersion   int     `json:"schema_version"`
	Status          string  `json:"status"`
	ExitCode        int     `json:"exit_code"`
	Summary         string  `json:"summary"`
	StartedAt       string  `json:"started_at"`
	DurationSeconds float64 `json:"duration_seconds"`
	Checks          []struct {
		Name            string  `json:"name"`
		Kind            string  `json:"kind"`
		Status          string  `json:"status"`
		Message         string  `json:"message"`
		Stage           string  `json:"stage"`
		DurationSeconds float64 `json:"duration_seconds"`
		TimeoutSeconds  float64 `json:"timeout_seconds"`
		Stages          []struct {
			Name            string  `json:"name"`
			DurationSeconds float64 `json:"duration_seconds"`
		} `json:"stages"`
		Details  map[string]string `json:"details"`
		Artifact string            `json:"artifact"`
	} `json:"checks"`
}

func TestProbeRunAgainstRelay(t *testing.T) {
	lab := newProbeLab(t)
	env := cleanEnv(t, "PROBE_KEY="+lab.apiKey)
	cfg := lab.writeConfig(t, "good.yaml", lab.goodChecks())
	textfile := filepath.Join(lab.dir, "probe.prom")
	arts := filepath.Join(lab.dir, "artifacts-ok")

	// Text: the summary line first, then one line per check; all OK.
	r := run(t, lab.dir, env, "probe", "-c", cfg, "run", "--textfile", textfile, "--artifacts", arts)
	r.wantCode(t, 0, "probe run, all up")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if !strings.HasPrefix(lines[0], "OK - 6 checks: 6 OK |") || len(lines) != 7 {
		t.Fatalf("summary:\n%s", r.stdout)
	}
	for _, want := range []string{"relay-server dev healthy and ready", "upgraded (tunnel-relay-client-v2-dev)",
		"upgraded (tunnel-relay-client)", "echo of ", "sha256 matches"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	assertNoSecrets(t, "stdout", r.stdout, lab.secrets())
	assertNoSecrets(t, "stderr", r.stderr, lab.secrets())
	if _, err := os.Stat(arts); err == nil {
		if n := assertTreeHasNoSecrets(t, arts, nil); n != 0 {
			t.Errorf("%d artifacts written for an all-OK run", n)
		}
	}

	// Textfile: every check's status, success, duration and the run stamp.
	prom, err := os.ReadFile(textfile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`warren_probe_check_status{check="tunnel-echo",kind="tunnel"} 0`,
		`warren_probe_check_success{check="tickets",kind="ticket"} 1`,
		`warren_probe_check_duration_seconds{check="relay",kind="relay_health"} `,
		`warren_probe_check_stage_duration_seconds{check="tunnel-echo",kind="tunnel",stage="exchange"} `,
		"# TYPE warren_probe_last_run_timestamp_seconds gauge\nwarren_probe_last_run_timestamp_seconds ",
		"warren_probe_status 0\n",
	} {
		if !strings.Contains(string(prom), want) {
			t.Errorf("textfile lacks %q:\n%s", want, prom)
		}
	}
	if st, _ := os.Stat(textfile); st.Mode().Perm() != 0o644 {
		t.Errorf("textfile mode %v, want 0644 (node_exporter reads it as another user)", st.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(lab.dir, ".probe.prom.tmp-*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}

	// JSON schema.
	r = run(t, lab.dir, env, "probe", "-c", cfg, "run", "-o", "json")
	r.wantCode(t, 0, "probe run -o json")
	var rep probeJSON
	decodeJSON(t, r.stdout, &rep)
	if rep.SchemaVersion != 1 || rep.Status != "OK" || rep.ExitCode != 0 || len(rep.Checks) != 6 ||
		!strings.HasPrefix(rep.Summary, "OK - 6 checks") || rep.StartedAt == "" || rep.DurationSeconds <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	for _, c := range rep.Checks {
		if c.Status != "OK" || c.Kind == "" || c.DurationSeconds <= 0 || c.TimeoutSeconds <= 0 || len(c.Stages) == 0 {
			t.Errorf("check %+v", c)
		}
	}
	if rep.Checks[5].Details["bytes"] != "100000" || len(rep.Checks[5].Details["sha256"]) != 64 {
		t.Errorf("ticket details: %v", rep.Checks[5].Details)
	}
	assertNoSecrets(t, "json", r.stdout, lab.secrets())

	// A warning threshold every run crosses: WARNING, exit 1.
	warn := lab.writeConfig(t, "warn.yaml", fmt.Sprintf("  - name: slow\n    kind: relay_health\n    url: %s\n    warning: 1ns\n", lab.relayURL))
	r = run(t, lab.dir, env, "probe", "-c", warn, "run")
	r.wantCode(t, 1, "warning threshold")
	if !strings.HasPrefix(r.stdout, "WARNING - 1 checks: 1 WARNING; not OK: slow") || !strings.Contains(r.stdout, "(warning at 1ns)") {
		t.Errorf("warning output:\n%s", r.stdout)
	}
}

func TestProbeRunFailures(t *testing.T) {
	lab := newProbeLab(t)
	env := cleanEnv(t, "PROBE_KEY="+lab.apiKey, "PROBE_BAD_KEY=wrong-api-key-5678")
	down := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cfg := lab.writeConfig(t, "bad.yaml", fmt.Sprintf(`  - name: relay-ok
    kind: relay_health
    url: %[1]s
  - name: relay-down
    kind: relay_health
    url: %[2]s
  - name: dns
    kind: relay_health
    url: http://no-such-host.invalid
  - name: ws-wrong-token
    kind: relay_ws
    url: %[1]s
    tunnel: web
    token: wrong-token-literal-1234
  - name: tunnel-wrong-key
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[3]d
    api_key_env: PROBE_BAD_KEY
  - name: tunnel-closed-port
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[4]d
    token_file: %[5]s
    timeout: 20s
  - name: tunnel-no-such-port
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: 1
    api_key_env: PROBE_KEY
    port_wait: 1s
    timeout: 20s
  - name: ticket-wrong-key
    kind: ticket
    url: %[1]s
    api_key_env: PROBE_BAD_KEY
  - name: ticket-down
    kind: ticket
    url: %[2]s
    api_key_env: PROBE_KEY
`, lab.relayURL, down, lab.echoPort, lab.closedPort, lab.tokenFile))
	arts := filepath.Join(lab.dir, "artifacts")
	textfile := filepath.Join(lab.dir, "t.prom")
	r := run(t, lab.dir, env, "probe", "-c", cfg, "run", "-o", "json", "--artifacts", arts, "--textfile", textfile)
	r.wantCode(t, 2, "probe run with failures")
	var rep probeJSON
	decodeJSON(t, r.stdout, &rep)
	if rep.Status != "CRITICAL" || rep.ExitCode != 2 {
		t.Fatalf("report: %s", r.stdout)
	}
	want := map[string][]string{
		"relay-ok":            {"OK", "healthy"},
		"relay-down":          {"CRITICAL", "connection refused"},
		"dns":                 {"CRITICAL", "DNS lookup failed"},
		"ws-wrong-token":      {"CRITICAL", "HTTP 401"},
		"tunnel-wrong-key":    {"CRITICAL", "credentials refused"},
		"tunnel-closed-port":  {"CRITICAL", "without sending anything"},
		"tunnel-no-such-port": {"CRITICAL", fmt.Sprintf("does not forward port 1 (ports: %d, %d)", min(lab.echoPort, lab.closedPort), max(lab.echoPort, lab.closedPort))},
		"ticket-wrong-key":    {"CRITICAL", "HTTP 401"},
		"ticket-down":         {"CRITICAL", "connection refused"},
	}
	for _, c := range rep.Checks {
		w := want[c.Name]
		if c.Status != w[0] || !strings.Contains(c.Message, w[1]) {
			t.Errorf("%s: %s %q, want %s containing %q", c.Name, c.Status, c.Message, w[0], w[1])
		}
		if c.Status != "OK" {
			if c.Artifact != filepath.Join(arts, c.Name, "probe-artifact.json") {
				t.Errorf("%s: artifact %q", c.Name, c.Artifact)
			}
			data, err := os.ReadFile(c.Artifact)
			if err != nil || !strings.Contains(string(data), `"status": "CRITICAL"`) || !strings.Contains(string(data), `"schema_version": 1`) {
				t.Errorf("%s: artifact %v\n%s", c.Name, err, data)
			}
		}
	}
	if len(rep.Checks) != len(want) {
		t.Fatalf("%d checks in the report", len(rep.Checks))
	}
	// The wrong literal token shows as a placeholder in its artifact.
	data, _ := os.ReadFile(filepath.Join(arts, "ws-wrong-token", "probe-artifact.json"))
	if !strings.Contains(string(data), `"token": "<redacted:token>"`) {
		t.Errorf("artifact params:\n%s", data)
	}
	if _, err := os.Stat(filepath.Join(arts, "relay-ok")); err == nil {
		t.Error("artifact written for an OK check")
	}
	if n := assertTreeHasNoSecrets(t, arts, lab.secrets()); n != len(want)-1 {
		t.Errorf("%d artifacts, want %d", n, len(want)-1)
	}
	prom, _ := os.ReadFile(textfile)
	if !strings.Contains(string(prom), `warren_probe_check_status{check="tunnel-closed-port",kind="tunnel"} 2`) ||
		!strings.Contains(string(prom), "warren_probe_status 2\n") {
		t.Errorf("textfile:\n%s", prom)
	}
	for what, text := range map[string]string{"stdout": r.stdout, "stderr": r.stderr, "textfile": string(prom)} {
		assertNoSecrets(t, what, text, lab.secrets())
	}

	// The relay goes away: the tunnel check is CRITICAL and says why.
	lab.relay.cmd.Process.Signal(syscall.SIGKILL)
	lab.relay.exitCode(t, 10*time.Second)
	good := lab.writeConfig(t, "good.yaml", lab.goodChecks())
	r = run(t, lab.dir, env, "probe", "-c", good, "run")
	r.wantCode(t, 2, "relay killed")
	if !strings.HasPrefix(r.stdout, "CRITICAL - 6 checks: 6 CRITICAL") || !strings.Contains(r.stdout, "connection refused") {
		t.Errorf("relay down:\n%s", r.stdout)
	}
	assertNoSecrets(t, "stdout", r.stdout, lab.secrets())
}

func TestProbeBadConfig(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv(t)
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	cases := []struct {
		name, body string
		want       []string
	}{
		{"typo.yaml", "checks:\n  - name: ws\n    kind: relay_ws\n    url: http://x\n    tunnel: t\n    tokn: abc\n",
			[]string{"typo.yaml", `checks[0] "ws"`, `key "tokn"`, `did you mean "token"`}},
		{"kind.yaml", "checks:\n  - name: x\n    kind: relay_healt\n    url: http://x\n",
			[]string{"kind.yaml", `checks[0] "x"`, `key "kind"`, `unknown check kind "relay_healt"`}},
		{"secretfile.yaml", "checks:\n  - name: tk\n    kind: ticket\n    url: http://x\n    api_key_file: /nonexistent/key\n",
			[]string{"secretfile.yaml", `checks[0] "tk"`, `key "api_key_file"`, "no such file"}},
		{"dup.yaml", "checks:\n  - {name: a, kind: relay_health, url: 'http://x'}\n  - {name: a, kind: relay_health, url: 'http://y'}\n",
			[]string{"dup.yaml", `checks[1] "a"`, `key "name"`, "already used"}},
		{"threshold.yaml", "checks:\n  - {name: a, kind: relay_health, url: 'http://x', warning: 2s, critical: 1s}\n",
			[]string{`checks[0] "a"`, `key "warning"`, "above critical"}},
		{"port.yaml", "checks:\n  - {name: a, kind: tunnel, url: 'http://x', tunnel: t, token: zzz-secret-zzz}\n",
			[]string{`checks[0] "a" (kind tunnel)`, `key "port"`}},
		{"empty.yaml", "timeout: 5s\n", []string{"no checks configured"}},
		{"toplevel.yaml", "timout: 5s\n", []string{"toplevel.yaml", `unknown key "timout"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := run(t, dir, env, "probe", "-c", write(c.name, c.body), "run")
			r.wantCode(t, 3, "bad config")
			for _, w := range c.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if strings.Contains(r.stderr+r.stdout, "zzz-secret-zzz") {
				t.Errorf("secret in output:\n%s%s", r.stdout, r.stderr)
			}
		})
	}
	r := run(t, dir, env, "probe", "-c", filepath.Join(dir, "missing.yaml"), "run")
	r.wantCode(t, 3, "missing config file")
	r = run(t, dir, env, "probe", "run", "--bogus-flag")
	r.wantCode(t, 3, "bad flag")
}

func TestProbeConfigShowRedacts(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "p.yaml")
	os.WriteFile(p, []byte("checks:\n  - name: ws\n    kind: relay_ws\n    url: http://x\n    tunnel: t\n    token: literal-secret-9876\n"), 0o600)
	for _, args := range [][]string{{"config", "show"}, {"config", "show", "-o", "json"}} {
		r := run(t, dir, cleanEnv(t), "probe", append([]string{"-c", p}, args...)...)
		r.wantCode(t, 0, "config show")
		// cli.WriteJSON escapes < and > as \u003c and \u003e.
		shown := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(r.stdout)
		if strings.Contains(r.stdout, "literal-secret-9876") || !strings.Contains(shown, "<redacted:token>") {
			t.Errorf("%v:\n%s", args, r.stdout)
		}
	}
	r := run(t, dir, cleanEnv(t), "probe", "checks")
	r.wantCode(t, 0, "probe checks")
	for _, k := range []string{"relay_health", "relay_ws", "tunnel", "ticket", "wing_presence", "wing_session",
		"turn_allocate", "dtls_handshake", "overlay_echo"} {
		if !strings.Contains(r.stdout, k+" ") {
			t.Errorf("probe checks lacks %s:\n%s", k, r.stdout)
		}
	}
	// The example list is valid but for its secret files.
	r = run(t, dir, cleanEnv(t), "probe", "checks", "--example")
	r.wantCode(t, 0, "probe checks --example")
	pskFile := filepath.Join(dir, "psk")
	psk := newKey(t)
	os.WriteFile(pskFile, []byte(psk+"\n"), 0o600)
	ex := strings.NewReplacer("/etc/warren/probe-api-key", p, "/etc/warren/probe-user-token", p, "/etc/warren/probe-psk", pskFile).Replace(r.stdout)
	exFile := filepath.Join(dir, "example.yaml")
	os.WriteFile(exFile, []byte(ex), 0o600)
	r = run(t, dir, cleanEnv(t, "PROBE_TICKETS_KEY=k", "PROBE_WING_USER_TOKEN=u", "PROBE_TURN_LINK=generic-turn://u:p@127.0.0.1:3478",
		"PROBE_OVERLAY_PSK="+psk), "probe", "-c", exFile, "config", "validate")
	r.wantCode(t, 0, "the example validates")
}

func TestProbeServe(t *testing.T) {
	lab := newProbeLab(t)
	cfg := lab.writeConfig(t, "serve.yaml", fmt.Sprintf(`  - name: relay
    kind: relay_health
    url: %[1]s
  - name: tunnel-echo
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[2]d
    token_file: %[3]s
    timeout: 20s
  - name: closed
    kind: tunnel
    url: %[1]s
    tunnel: web
    port: %[4]d
    token_file: %[3]s
    timeout: 20s
`, lab.relayURL, lab.echoPort, lab.tokenFile, lab.closedPort))
	d := start(t, lab.dir, cleanEnv(t), "probe", "-c", cfg, "--log-format", "json", "serve", "--listen", "127.0.0.1:0", "--interval", "1h")
	addr := d.stderr.wait(t, regexpOf(`"msg":"serving".*"addr":"([^"]+)"`), 30*time.Second)[1]
	d.stderr.wait(t, regexpOf(`"msg":"run done"`), 60*time.Second)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `warren_probe_check_status{check="relay",kind="relay_health"} 0`) ||
		!strings.Contains(body, `warren_probe_check_status{check="closed",kind="tunnel"} 2`) ||
		!strings.Contains(body, "warren_build_info{") {
		t.Errorf("/metrics %d:\n%s", code, body)
	}
	code, body = get("/status.json")
	var rep probeJSON
	decodeJSON(t, body, &rep)
	if code != 503 || rep.Status != "CRITICAL" || len(rep.Checks) != 3 {
		t.Errorf("/status.json %d: %s", code, body)
	}
	code, body = get("/")
	if code != 200 || !strings.Contains(body, "CRITICAL - 3 checks") || !strings.Contains(body, "tunnel-echo") {
		t.Errorf("/ %d:\n%s", code, body)
	}
	assertNoSecrets(t, "status page", body, lab.secrets())
	d.cmd.Process.Signal(syscall.SIGTERM)
	if c := d.exitCode(t, 20*time.Second); c != 0 {
		t.Errorf("probe serve exit %d\n%s", c, d.stderr)
	}
	assertNoSecrets(t, "serve stderr", d.stderr.String(), lab.secrets())
}
