package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEveryBinaryBasics(t *testing.T) {
	for _, bin := range binaries {
		t.Run(bin, func(t *testing.T) {
			dir, env := t.TempDir(), cleanEnv(t)
			r := run(t, dir, env, bin, "--help")
			r.wantCode(t, 0, "--help")
			if !strings.Contains(r.stdout, "Usage:") || !strings.Contains(r.stdout, bin) {
				t.Errorf("--help output:\n%s", r.stdout)
			}
			r = run(t, dir, env, bin, "version")
			r.wantCode(t, 0, "version")
			if !strings.HasPrefix(r.stdout, bin+" ") || !strings.Contains(r.stdout, "go1.") {
				t.Errorf("version output: %q", r.stdout)
			}
			r = run(t, dir, env, bin, "--version")
			r.wantCode(t, 0, "--version")
			r = run(t, dir, env, bin, "version", "-o", "json")
			r.wantCode(t, 0, "version -o json")
			var v map[string]string
			decodeJSON(t, r.stdout, &v)
			for _, k := range []string{"binary", "version", "commit", "date", "go_version"} {
				if v[k] == "" {
					t.Errorf("version -o json lacks %s: %s", k, r.stdout)
				}
			}
			r = run(t, dir, env, bin, "completion", "bash")
			r.wantCode(t, 0, "completion bash")
			if !strings.Contains(r.stdout, "bash completion") {
				t.Errorf("completion bash output does not look like a bash completion script")
			}
			r = run(t, dir, deployEnv(t, bin), bin, "config", "validate")
			r.wantCode(t, 0, "config validate")
			r = run(t, dir, env, bin, "config", "show")
			r.wantCode(t, 0, "config show")
			if !strings.Contains(r.stdout, "log_level: info") {
				t.Errorf("config show output:\n%s", r.stdout)
			}
			r = run(t, dir, env, bin, "no-such-command")
			want := 2
			if bin == "probe" {
				want = 3 // Nagios UNKNOWN
			}
			r.wantCode(t, want, "unknown command")
		})
	}
}

// deployEnv is cleanEnv plus what a deployment must add to the defaults
// before the daemon would start (config validate runs the daemon's checks).
func deployEnv(t *testing.T, bin string) []string {
	switch bin {
	case "relay-server":
		return cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=k", "WARREN_RELAY_SERVER_DATA_DIR="+filepath.Join(t.TempDir(), "data"))
	case "tunnel-host":
		return cleanEnv(t, "WARREN_TUNNEL_HOST_RELAY=http://127.0.0.1:1", "WARREN_TUNNEL_HOST_TUNNEL=t", "WARREN_TUNNEL_HOST_API_KEY=k")
	case "tunnel-server":
		return cleanEnv(t, "WARREN_TUNNEL_SERVER_CONNECT=127.0.0.1:1", "WARREN_TUNNEL_SERVER_COMPAT_UNAUTHENTICATED=true")
	}
	return cleanEnv(t)
}

// The example config of each binary is what `config show` prints with
// nothing set, and it validates.
func TestExampleConfigsAreCurrent(t *testing.T) {
	for _, bin := range binaries {
		t.Run(bin, func(t *testing.T) {
			path, _ := filepath.Abs(filepath.Join("..", "..", "configs", bin+".yaml"))
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := run(t, t.TempDir(), cleanEnv(t), bin, "config", "show")
			r.wantCode(t, 0, "config show")
			var body []string
			for _, l := range strings.SplitAfter(string(data), "\n") {
				if !strings.HasPrefix(l, "##") {
					body = append(body, l)
				}
			}
			if got := strings.TrimLeft(strings.Join(body, ""), "\n"); got != r.stdout {
				t.Fatalf("configs/%s.yaml is stale; run scripts/gen-configs.sh\n--- file\n%s\n--- config show\n%s", bin, got, r.stdout)
			}
			r = run(t, t.TempDir(), deployEnv(t, bin), bin, "-c", path, "config", "validate")
			r.wantCode(t, 0, "config validate of the example")
		})
	}
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte("tls:\n  cert_file: from-file.pem\n  key_file: k.pem\n"), 0o600)
	certFile := func(r result) string {
		t.Helper()
		r.wantCode(t, 0, "config show")
		var m struct {
			TLS struct {
				CertFile string `json:"cert_file"`
			} `json:"tls"`
		}
		decodeJSON(t, r.stdout, &m)
		return m.TLS.CertFile
	}
	show := []string{"config", "show", "-o", "json"}
	if got := certFile(run(t, dir, cleanEnv(t), "relay-server", show...)); got != "" {
		t.Errorf("default: tls.cert_file = %q, want empty", got)
	}
	if got := certFile(run(t, dir, cleanEnv(t), "relay-server", append([]string{"-c", cfg}, show...)...)); got != "from-file.pem" {
		t.Errorf("file: tls.cert_file = %q", got)
	}
	env := cleanEnv(t, "WARREN_RELAY_SERVER_TLS_CERT_FILE=from-env.pem")
	if got := certFile(run(t, dir, env, "relay-server", append([]string{"-c", cfg}, show...)...)); got != "from-env.pem" {
		t.Errorf("env over file: tls.cert_file = %q", got)
	}
	if got := certFile(run(t, dir, env, "relay-server", append([]string{"-c", cfg, "--tls-cert-file", "from-flag.pem"}, show...)...)); got != "from-flag.pem" {
		t.Errorf("flag over env: tls.cert_file = %q", got)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "relay-server.yaml"), []byte("listen: :9\ntickets:\n  max_byte: 10\n"), 0o600)
	r := run(t, dir, cleanEnv(t), "relay-server", "config", "validate")
	r.wantCode(t, 2, "unknown key")
	for _, want := range []string{`unknown key "tickets.max_byte"`, "relay-server.yaml:3", `"tickets.max_bytes"`} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q: %s", want, r.stderr)
		}
	}
	r = run(t, t.TempDir(), cleanEnv(t), "relay-server", "--config", "/nonexistent/relay.yaml", "config", "show")
	r.wantCode(t, 2, "missing --config")
	if !strings.Contains(r.stderr, "/nonexistent/relay.yaml does not exist") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// A daemon refuses to start with a bad config too, not only `config validate`.
	r = run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=k"), "relay-server")
	r.wantCode(t, 2, "serve with unknown key")
	r = run(t, t.TempDir(), cleanEnv(t), "relay-server", "--listen", "127.0.0.1:0", "--data-dir", t.TempDir())
	r.wantCode(t, 2, "serve without admin key")
	if !strings.Contains(r.stderr, "admin_key") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestSecretFromFile(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "admin.key")
	os.WriteFile(keyFile, []byte("file-admin-key\n"), 0o600)
	env := cleanEnv(t)
	r := run(t, dir, env, "relay-server", "--admin-key-file", keyFile, "config", "show")
	r.wantCode(t, 0, "config show")
	if strings.Contains(r.stdout, "file-admin-key") || !strings.Contains(r.stdout, "admin_key: <redacted>") {
		t.Fatalf("secret not read or not redacted:\n%s", r.stdout)
	}
	// The key read from the file is the one the server accepts.
	d := start(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY_FILE="+keyFile), "relay-server",
		"--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir", t.TempDir())
	url := d.stderr.wait(t, listeningRE, 30*time.Second)[1]
	r = run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=file-admin-key"), "relay-server",
		"tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b")
	r.wantCode(t, 0, "mint with the key from the file")
	r = run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=wrong"), "relay-server",
		"tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b")
	r.wantCode(t, 1, "mint with a wrong key")
	if !strings.Contains(r.stderr, "401") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestSIGTERMStopsCleanly(t *testing.T) {
	d, url := startRelay(t, "k", "--shutdown-timeout", "3s")
	// "listening" comes before the node has registered in its store;
	// /readyz turns 200 after that, as an operator's health check sees.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz not 200 within 30s: %v %v", resp, err)
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, d.stderr)
	}
	d.stderr.wait(t, regexpOf(`"msg":"shutting down".*"signal":"terminated"`), time.Second)
}

func TestSIGHUPReloadsLogLevel(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte("log_level: info\n"), 0o600)
	d := start(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=k"), "relay-server", "-c", cfg,
		"--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir", t.TempDir())
	d.stderr.wait(t, listeningRE, 30*time.Second)
	os.WriteFile(cfg, []byte("log_level: debug\nbogus: 1\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.stderr.wait(t, regexpOf(`"msg":"reload failed; keeping the running configuration".*bogus`), 10*time.Second)
	os.WriteFile(cfg, []byte("log_level: debug\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	d.stderr.wait(t, regexpOf(`"msg":"configuration reloaded"`), 10*time.Second)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.exitCode(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
