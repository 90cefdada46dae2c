package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// testConfig exercises every kind of key the loader supports.
type testConfig struct {
	Daemon `yaml:",inline"`
	Listen string   `yaml:"listen" flag:"listen,l" usage:"where to listen"`
	Token  string   `yaml:"token" flag:"token" secret:"true" usage:"a secret"`
	Peers  []string `yaml:"peers" flag:"peer" usage:"peers"`
	Server struct {
		MaxBytes ByteSize      `yaml:"max_bytes" flag:"max-bytes"`
		Idle     time.Duration `yaml:"idle" flag:"idle"`
		Retries  int           `yaml:"retries" flag:"retries"`
		Verbose  bool          `yaml:"verbose"`
		Ports    []struct {
			Port int    `yaml:"port"`
			Name string `yaml:"name"`
		} `yaml:"ports"`
	} `yaml:"server"`
}

func (c *testConfig) Validate() error {
	if c.Server.Retries < 0 {
		return FieldErrorf("server.retries", "must not be negative")
	}
	return nil
}

// runTest runs a binary named "testbin" whose root prints the loaded config as JSON.
func runTest(t *testing.T, dir string, args ...string) (code int, stdout, stderr string, cfg *testConfig) {
	t.Helper()
	cfg = &testConfig{Daemon: DefaultDaemon(), Listen: ":80"}
	cfg.Server.Retries = 3
	cfg.Server.Idle = time.Minute
	build := func(a *App) *cobra.Command {
		return a.NewRoot(cfg, func(cmd *cobra.Command, _ []string) error { return nil })
	}
	var out, errb bytes.Buffer
	wd, _ := os.Getwd()
	if dir != "" {
		if err := os.Chdir(dir); err != nil {
			t.Fatal(err)
		}
		defer os.Chdir(wd)
	}
	code = Run(context.Background(), Spec{Name: "testbin"}, build, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String(), cfg
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// isolate keeps the developer's own config files and env out of a test.
func isolate(t *testing.T) string {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("HOME", dir)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "WARREN_TESTBIN_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	return dir
}

func TestPrecedenceNestedKey(t *testing.T) {
	dir := isolate(t)
	writeFile(t, dir, "testbin.yaml", "server:\n  retries: 5\n")

	code, _, stderr, cfg := runTest(t, dir)
	if code != 0 || cfg.Server.Retries != 5 {
		t.Fatalf("file: code %d retries %d stderr %s", code, cfg.Server.Retries, stderr)
	}
	t.Setenv("WARREN_TESTBIN_SERVER_RETRIES", "7")
	if code, _, stderr, cfg = runTest(t, dir); code != 0 || cfg.Server.Retries != 7 {
		t.Fatalf("env: code %d retries %d stderr %s", code, cfg.Server.Retries, stderr)
	}
	if code, _, stderr, cfg = runTest(t, dir, "--retries", "9"); code != 0 || cfg.Server.Retries != 9 {
		t.Fatalf("flag: code %d retries %d stderr %s", code, cfg.Server.Retries, stderr)
	}
	os.Remove(filepath.Join(dir, "testbin.yaml"))
	os.Unsetenv("WARREN_TESTBIN_SERVER_RETRIES")
	if code, _, stderr, cfg = runTest(t, dir); code != 0 || cfg.Server.Retries != 3 {
		t.Fatalf("default: code %d retries %d stderr %s", code, cfg.Server.Retries, stderr)
	}
}

func TestEveryKeyFromEnv(t *testing.T) {
	dir := isolate(t)
	t.Setenv("WARREN_TESTBIN_LISTEN", "127.0.0.1:9")
	t.Setenv("WARREN_TESTBIN_PEERS", "a, b")
	t.Setenv("WARREN_TESTBIN_SERVER_MAX_BYTES", "2MiB")
	t.Setenv("WARREN_TESTBIN_SERVER_IDLE", "3s")
	t.Setenv("WARREN_TESTBIN_SERVER_VERBOSE", "true")
	t.Setenv("WARREN_TESTBIN_SERVER_PORTS", `[{"port": 22, "name": "ssh"}]`)
	t.Setenv("WARREN_TESTBIN_LOG_LEVEL", "debug")
	t.Setenv("WARREN_TESTBIN_SHUTDOWN_TIMEOUT", "4s")
	code, _, stderr, cfg := runTest(t, dir)
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if cfg.Listen != "127.0.0.1:9" || strings.Join(cfg.Peers, "|") != "a|b" || cfg.Server.MaxBytes != 2<<20 ||
		cfg.Server.Idle != 3*time.Second || !cfg.Server.Verbose || len(cfg.Server.Ports) != 1 ||
		cfg.Server.Ports[0].Name != "ssh" || cfg.LogLevel.String() != "DEBUG" || cfg.ShutdownTimeout != 4*time.Second {
		t.Fatalf("env not applied: %+v", cfg)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		env      map[string]string
		args     []string
		wantCode int
		wantErr  []string
	}{
		{name: "unknown key", file: "listen: :1\nserver:\n  retires: 2\n", wantCode: 2,
			wantErr: []string{`unknown key "server.retires"`, "testbin.yaml:3", `did you mean "server.retries"`}},
		{name: "wrong type", file: "server:\n  retries: many\n", wantCode: 2,
			wantErr: []string{"server.retries", "testbin.yaml:2", "expected an integer", `"many"`}},
		{name: "duration without unit", file: "server:\n  idle: 30\n", wantCode: 2,
			wantErr: []string{"server.idle", "expected a duration"}},
		{name: "section not a mapping", file: "server: 3\n", wantCode: 2, wantErr: []string{"server", "expected a mapping"}},
		{name: "bad yaml", file: "listen: [\n", wantCode: 2, wantErr: []string{"testbin.yaml"}},
		{name: "env wrong type", env: map[string]string{"WARREN_TESTBIN_SERVER_RETRIES": "x"}, wantCode: 2,
			wantErr: []string{"env WARREN_TESTBIN_SERVER_RETRIES", "expected an integer"}},
		{name: "unknown env", env: map[string]string{"WARREN_TESTBIN_LISTN": ":1"}, wantCode: 2,
			wantErr: []string{"env WARREN_TESTBIN_LISTN", "unknown setting", "WARREN_TESTBIN_LISTEN"}},
		{name: "missing config", args: []string{"--config", "nope.yaml"}, wantCode: 2,
			wantErr: []string{"flag --config", "nope.yaml does not exist"}},
		{name: "missing config from env", env: map[string]string{"WARREN_TESTBIN_CONFIG": "gone.yaml"}, wantCode: 2,
			wantErr: []string{"env WARREN_TESTBIN_CONFIG", "gone.yaml does not exist"}},
		{name: "validate blames source", args: []string{"--retries", "-1"}, wantCode: 2,
			wantErr: []string{"server.retries", "flag --retries", "must not be negative"}},
		{name: "bad flag", args: []string{"--no-such-flag"}, wantCode: 2, wantErr: []string{"unknown flag", "--help"}},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantCode: 2, wantErr: []string{"log_level", "debug, info, warn or error"}},
		{name: "secret and file both", file: "token: a\ntoken_file: /dev/null\n", wantCode: 2, wantErr: []string{"set either token", "not both"}},
		{name: "empty secret file", file: "token_file: empty\n", wantCode: 2, wantErr: []string{"token_file", "is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolate(t)
			writeFile(t, dir, "empty", "")
			if tt.file != "" {
				writeFile(t, dir, "testbin.yaml", tt.file)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			code, _, stderr, _ := runTest(t, dir, tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestSecretFileAndRedaction(t *testing.T) {
	dir := isolate(t)
	writeFile(t, dir, "tok", "s3cret-value\n")
	writeFile(t, dir, "testbin.yaml", "token_file: tok\n")
	code, out, stderr, cfg := runTest(t, dir, "config", "show")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	if cfg.Token != "s3cret-value" {
		t.Fatalf("token = %q, want the file's content without newline", cfg.Token)
	}
	if strings.Contains(out, "s3cret") || !strings.Contains(out, "<redacted>") {
		t.Fatalf("config show does not redact:\n%s", out)
	}
	code, out, _, _ = runTest(t, dir, "config", "show", "-o", "json")
	var m map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m["token"] != "<redacted>" {
		t.Fatalf("config show -o json: code %d out %s", code, out)
	}
	if _, ok := m["server"].(map[string]any)["retries"]; !ok {
		t.Fatalf("nested key missing from json: %s", out)
	}
}

func TestConfigShowRoundTrips(t *testing.T) {
	dir := isolate(t)
	writeFile(t, dir, "testbin.yaml", "server:\n  max_bytes: 1GiB\n  idle: 90s\n  ports:\n    - port: 80\n      name: web\n")
	code, out, stderr, _ := runTest(t, dir, "config", "show")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	// What config show prints must load back as a config file.
	writeFile(t, dir, "shown.yaml", out)
	code, _, stderr, cfg := runTest(t, dir, "-c", "shown.yaml", "config", "validate")
	if code != 0 {
		t.Fatalf("shown config does not validate: %s\n%s", stderr, out)
	}
	if cfg.Server.MaxBytes != 1<<30 || cfg.Server.Idle != 90*time.Second || len(cfg.Server.Ports) != 1 {
		t.Fatalf("round trip lost values: %+v", cfg.Server)
	}
}

func TestVersionSkipsBrokenConfig(t *testing.T) {
	dir := isolate(t)
	writeFile(t, dir, "testbin.yaml", "bogus: 1\n")
	code, out, _, _ := runTest(t, dir, "version", "-o", "json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["binary"] != "testbin" || v["go_version"] == "" {
		t.Fatalf("version -o json: code %d out %q", code, out)
	}
	if code, out, _, _ = runTest(t, dir, "--version"); code != 0 || !strings.HasPrefix(out, "testbin ") {
		t.Fatalf("--version: code %d out %q", code, out)
	}
}

func TestExitCodes(t *testing.T) {
	for _, tt := range []struct {
		err    error
		nagios bool
		want   int
	}{
		{nil, false, 0}, {os.ErrClosed, false, 1}, {Usagef("x"), false, 2}, {&ConfigError{Err: os.ErrClosed}, false, 2},
		{Exit(1), true, 1}, {Usagef("x"), true, 3}, {os.ErrClosed, true, 3}, {&ExitError{Code: 2}, true, 2},
	} {
		if got := exitCode(tt.err, tt.nagios); got != tt.want {
			t.Errorf("exitCode(%v, nagios=%v) = %d, want %d", tt.err, tt.nagios, got, tt.want)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "64KiB": 64 << 10, "1GiB": 1 << 30, "1gb": 1e9, "10M": 10 << 20, "1_000": 1000} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err != nil || int64(b) != want {
			t.Errorf("%q: got %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "x", "-1", "1.5GiB", "99999999999TiB"} {
		var b ByteSize
		if err := b.UnmarshalText([]byte(in)); err == nil {
			t.Errorf("%q: accepted as %d", in, b)
		}
	}
}

func FuzzReadYAML(f *testing.F) {
	f.Add([]byte("listen: :1\nserver:\n  retries: 2\n"))
	f.Add([]byte("server:\n  ports:\n    - port: 1\n"))
	f.Add([]byte("[1, 2]"))
	s, err := newSchema(reflectTypeOfTestConfig())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readYAML("f.yaml", data, s, map[string]int{})
	})
}

// subConfig has two subcommands with a --mode flag each, for different keys.
type subConfig struct {
	Daemon `yaml:",inline"`
	Mode   string `yaml:"mode" flag:"mode" cmd:"a" usage:"a's mode"`
	B      struct {
		Mode string `yaml:"mode" flag:"mode" usage:"b's mode"`
		Key  string `yaml:"key" flag:"key" secret:"true"`
	} `yaml:"b" cmd:"b"`
}

func TestSubcommandFlags(t *testing.T) {
	dir := isolate(t)
	run := func(args ...string) (int, *subConfig, string) {
		cfg := &subConfig{Daemon: DefaultDaemon(), Mode: "a-default"}
		build := func(a *App) *cobra.Command {
			root := a.NewRoot(cfg, nil)
			for _, n := range []string{"a", "b"} {
				root.AddCommand(&cobra.Command{Use: n, RunE: func(*cobra.Command, []string) error { return nil }})
			}
			return root
		}
		var out, errb bytes.Buffer
		code := Run(context.Background(), Spec{Name: "testbin"}, build, args, strings.NewReader(""), &out, &errb)
		return code, cfg, errb.String()
	}
	if code, cfg, _ := run("a", "--mode", "x"); code != 0 || cfg.Mode != "x" || cfg.B.Mode != "" {
		t.Fatalf("a --mode x: code %d, cfg %+v", code, cfg)
	}
	if code, cfg, _ := run("b", "--mode", "y", "--key-file", writeFile(t, dir, "k", "s3\n")); code != 0 || cfg.B.Mode != "y" || cfg.Mode != "a-default" || cfg.B.Key != "s3" {
		t.Fatalf("b --mode y: code %d, cfg %+v", code, cfg)
	}
	t.Setenv("WARREN_TESTBIN_B_MODE", "env")
	if code, cfg, _ := run("b"); code != 0 || cfg.B.Mode != "env" {
		t.Fatalf("b with env: code %d, cfg %+v", code, cfg)
	}
	// The flag belongs to its subcommand only.
	if code, _, stderr := run("a", "--key-file", "k"); code != 2 || !strings.Contains(stderr, "unknown flag: --key-file") {
		t.Fatalf("a --key-file: code %d, stderr %s", code, stderr)
	}
}

func TestConfigShowHidesURLPasswords(t *testing.T) {
	isolate(t)
	code, out, _, _ := runTest(t, "", "--listen", "postgres://app:hunter2@db.example/warren", "config", "show")
	if code != 0 || strings.Contains(out, "hunter2") || !strings.Contains(out, "postgres://app:<redacted>@db.example/warren") {
		t.Fatalf("config show: code %d\n%s", code, out)
	}
}

// With LocalRootFlags, untagged keys are flags of the root and config
// validate|show only; cmd:"*" keys and the log keys stay global. Preflight
// checks run on the root and in config validate.
func TestLocalRootFlagsAndPreflight(t *testing.T) {
	type cfgT struct {
		Daemon `yaml:",inline"`
		Listen string `yaml:"listen" flag:"listen"`
		Key    string `yaml:"key" flag:"key" cmd:"*"`
	}
	runIt := func(args ...string) (int, string, string) {
		cfg := &cfgT{Daemon: DefaultDaemon()}
		build := func(a *App) *cobra.Command {
			check := func() error {
				if cfg.Listen == "bad" {
					return &ConfigError{Key: "listen", Where: a.Source("listen"), Err: os.ErrInvalid}
				}
				return nil
			}
			root := a.NewRoot(cfg, func(*cobra.Command, []string) error { return check() })
			root.AddCommand(&cobra.Command{Use: "admin", RunE: func(*cobra.Command, []string) error { return nil }})
			a.Preflight("", check)
			return root
		}
		var out, errb bytes.Buffer
		code := Run(context.Background(), Spec{Name: "testbin", LocalRootFlags: true}, build, args, strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errs := runIt("admin", "--listen", "x"); code != 2 || !strings.Contains(errs, "unknown flag: --listen") {
		t.Errorf("admin --listen: exit %d, %s", code, errs)
	}
	if code, _, errs := runIt("admin", "--key", "k", "--log-level", "debug"); code != 0 {
		t.Errorf("admin with global flags: exit %d, %s", code, errs)
	}
	for _, args := range [][]string{{"--listen", "bad", "config", "validate"}, {"config", "validate", "--listen", "bad"}, {"--listen", "bad"}} {
		if code, _, errs := runIt(args...); code != 2 || !strings.Contains(errs, "config listen (flag --listen)") {
			t.Errorf("%v: exit %d, %s", args, code, errs)
		}
	}
	if code, out, _ := runIt("--listen", "good", "config", "show"); code != 0 || !strings.Contains(out, "listen: good") {
		t.Errorf("config show --listen: exit %d, %s", code, out)
	}
	if code, _, errs := runIt("config", "validate", "admin"); code != 2 || !strings.Contains(errs, "no checks for that command") {
		t.Errorf("config validate admin: exit %d, %s", code, errs)
	}
}
