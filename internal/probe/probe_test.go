package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/internal/redact"
)

// funcCheck is a check made of a function, for runner tests.
type funcCheck func(ctx context.Context) Result

func (f funcCheck) Run(ctx context.Context) Result { return f(ctx) }

func configured(name string, timeout, warn, crit time.Duration, f funcCheck) *Configured {
	return &Configured{Name: name, Kind: "test", Timeout: timeout, Warning: warn, Critical: crit, Check: f}
}

func TestWorst(t *testing.T) {
	cases := []struct{ a, b, want Status }{
		{OK, OK, OK}, {OK, Warning, Warning}, {Warning, Unknown, Unknown},
		{Unknown, Critical, Critical}, {Critical, Unknown, Critical}, {Critical, OK, Critical},
	}
	for _, c := range cases {
		if got := Worst(c.a, c.b); got != c.want {
			t.Errorf("Worst(%s, %s) = %s, want %s", c.a, c.b, got, c.want)
		}
	}
}

func TestJudgeThresholds(t *testing.T) {
	c := &Configured{Name: "c", Timeout: time.Second, Warning: 100 * time.Millisecond, Critical: 300 * time.Millisecond}
	cases := []struct {
		res  Result
		d    time.Duration
		want Status
		msg  string
	}{
		{Result{Message: "fine"}, 50 * time.Millisecond, OK, "fine"},
		{Result{Message: "fine"}, 100 * time.Millisecond, Warning, "warning at 100ms"},
		{Result{Message: "fine"}, 300 * time.Millisecond, Critical, "critical at 300ms"},
		{Result{Status: Warning, Message: "old version"}, time.Millisecond, Warning, "old version"},
		{Result{Err: errors.New("boom"), Stage: "connect"}, time.Millisecond, Critical, "connect: boom"},
		{Result{Err: &net.DNSError{Err: "no such host", Name: "x.invalid"}, Stage: "dns"}, time.Millisecond, Critical, "DNS lookup failed"},
	}
	for _, tc := range cases {
		st, msg := judge(c, tc.res, tc.d, false, false)
		if st != tc.want || !strings.Contains(msg, tc.msg) {
			t.Errorf("judge(%+v, %s) = %s %q, want %s containing %q", tc.res, tc.d, st, msg, tc.want, tc.msg)
		}
	}
	if st, msg := judge(c, Result{Err: context.DeadlineExceeded}, time.Second, true, false); st != Critical || msg != "timed out after 1s" {
		t.Errorf("timeout: %s %q", st, msg)
	}
}

func TestRunnerConcurrentTimeoutPanicAndRedaction(t *testing.T) {
	red := redact.NewRedactor()
	red.Add("token", "s3cr3t-value")
	release := make(chan struct{})
	defer close(release)
	started := make(chan struct{}, 3)
	// Grace must cover "slow" returning after its context ends however
	// loaded the machine is; "stuck" then costs the whole grace.
	r := &Runner{Redactor: red, Grace: 3 * time.Second, Checks: []*Configured{
		configured("ok", time.Second, 0, 0, func(ctx context.Context) Result {
			started <- struct{}{}
			return Result{Message: "fine"}
		}),
		configured("slow", 100*time.Millisecond, 0, 0, func(ctx context.Context) Result {
			started <- struct{}{}
			<-ctx.Done()
			return Result{Stage: "connect", Err: fmt.Errorf("dial: %w", ctx.Err())}
		}),
		configured("stuck", 100*time.Millisecond, 0, 0, func(ctx context.Context) Result {
			started <- struct{}{}
			<-release // ignores its context
			return Result{}
		}),
		configured("panics", time.Second, 0, 0, func(ctx context.Context) Result { panic("oops") }),
		configured("leaky", time.Second, 0, 0, func(ctx context.Context) Result {
			return Result{Err: errors.New("refused token s3cr3t-value"), Details: map[string]string{"url": "http://x/?t=s3cr3t-value"}}
		}),
	}}
	rep := r.Run(context.Background())
	got := map[string]CheckReport{}
	for _, c := range rep.Checks {
		got[c.Name] = c
	}
	if rep.Checks[0].Name != "ok" || len(rep.Checks) != 5 {
		t.Fatalf("order: %+v", rep.Checks)
	}
	check := func(name string, st Status, sub string) {
		t.Helper()
		if c := got[name]; c.Status != st || !strings.Contains(c.Message, sub) {
			t.Errorf("%s: %s %q, want %s containing %q", name, c.Status, c.Message, st, sub)
		}
	}
	check("ok", OK, "fine")
	check("slow", Critical, "timed out after 100ms (connect: dial: context deadline exceeded)")
	check("stuck", Critical, "timed out after 100ms")
	check("panics", Unknown, "check panicked: oops")
	check("leaky", Critical, "refused token <redacted:token>")
	if got["leaky"].Details["url"] != "http://x/?t=<redacted:token>" {
		t.Errorf("details not redacted: %v", got["leaky"].Details)
	}
	if rep.Status != Critical || !strings.HasPrefix(rep.Summary, "CRITICAL - 5 checks: 1 OK, 3 CRITICAL, 1 UNKNOWN; not OK: slow, stuck, panics, leaky") {
		t.Errorf("summary %s %q", rep.Status, rep.Summary)
	}
}

func TestRunnerNoChecksIsUnknown(t *testing.T) {
	rep := (&Runner{}).Run(context.Background())
	if rep.Status != Unknown {
		t.Fatalf("status %s", rep.Status)
	}
}

// testKind registers a kind with every parameter type in a fresh Default.
type testParams struct {
	URL   string        `yaml:"url"`
	Port  int           `yaml:"port"`
	Wait  time.Duration `yaml:"wait"`
	Token Secret        `yaml:"token"`
	Flag  bool          `yaml:"flag"`
}

func withTestKind(t *testing.T) *Registry {
	t.Helper()
	old := Default
	Default = NewRegistry()
	t.Cleanup(func() { Default = old })
	Default.MustRegister(Kind{
		Name: "test", Summary: "a test kind", Example: "- name: t\n  kind: test\n  url: x",
		Params: func() any { return &testParams{Port: 80} },
		New: func(p any, env Env) (Check, error) {
			tp := p.(*testParams)
			if tp.URL == "" {
				return nil, ParamErrorf("url", "missing")
			}
			return funcCheck(func(context.Context) Result { return Result{Message: tp.Token.Value} }), nil
		},
	})
	return Default
}

func decodeSpecs(t *testing.T, doc string) (Specs, error) {
	t.Helper()
	var s struct {
		Checks Specs `yaml:"checks"`
	}
	err := yaml.Unmarshal([]byte(doc), &s)
	return s.Checks, err
}

func TestSpecsDecodeAndBuild(t *testing.T) {
	withTestKind(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tok"), []byte("file-secret\n"), 0o600)
	src := SecretSource{ReadFile: os.ReadFile, LookupEnv: func(n string) (string, bool) {
		if n == "TOK" {
			return "env-secret", true
		}
		return "", false
	}}
	specs, err := decodeSpecs(t, fmt.Sprintf(`checks:
  - {name: a, kind: test, url: u, token_file: %s, timeout: 2s, warning: 1s, critical: 2s}
  - {name: b, kind: test, url: u, token_env: TOK, port: 8080, wait: 5s}
  - {name: c, kind: test, url: u, token: inline-secret}
`, filepath.Join(dir, "tok")))
	if err != nil {
		t.Fatal(err)
	}
	red := redact.NewRedactor()
	built, err := Build(specs, BuildOptions{DefaultTimeout: 7 * time.Second, Secrets: src, Env: Env{Redactor: red}})
	if err != nil {
		t.Fatal(err)
	}
	if built[0].Timeout != 2*time.Second || built[0].Warning != time.Second || built[1].Timeout != 7*time.Second {
		t.Errorf("timeouts: %+v %+v", built[0], built[1])
	}
	if built[1].Params["port"] != 8080 || built[1].Params["wait"] != "5s" || built[1].Params["token"] != "<redacted:token>" {
		t.Errorf("sanitized params: %v", built[1].Params)
	}
	for i, want := range []string{"file-secret", "env-secret", "inline-secret"} {
		if got := built[i].Check.Run(context.Background()).Message; got != want {
			t.Errorf("check %d secret %q, want %q", i, got, want)
		}
		if strings.Contains(red.Redact("x "+want), want) {
			t.Errorf("redactor does not know %q", want)
		}
	}
	// config show: literal secrets redacted, files and env names shown.
	out, err := yaml.Marshal(specs)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "inline-secret") || !strings.Contains(string(out), "token: <redacted:token>") ||
		!strings.Contains(string(out), "token_env: TOK") {
		t.Errorf("MarshalYAML:\n%s", out)
	}
	js, _ := specs.MarshalJSON()
	if strings.Contains(string(js), "inline-secret") {
		t.Errorf("MarshalJSON: %s", js)
	}
}

func TestSpecErrors(t *testing.T) {
	withTestKind(t)
	src := SecretSource{ReadFile: os.ReadFile, LookupEnv: func(string) (string, bool) { return "", false }}
	cases := []struct{ doc, want string }{
		{"checks: {a: 1}", "checks must be a list"},
		{"checks: [1]", "checks[0]: expected a mapping"},
		{"checks: [{kind: test}]", `checks[0]: key "name": missing`},
		{"checks: [{name: 'a b', kind: test}]", `checks[0] "a b": key "name"`},
		{"checks: [{name: a}]", `checks[0] "a": key "kind": missing; one of test`},
		{"checks: [{name: a, kind: nope}]", `key "kind": unknown check kind "nope"`},
		{"checks: [{name: a, kind: test, timeout: 5}]", `key "timeout": expected a duration`},
		{"checks: [{name: a, kind: test, timeout: -1s}]", `key "timeout": must not be negative`},
		{"checks: [{name: a, kind: test}, {name: a, kind: test}]", `checks[1] "a": key "name": name already used by checks[0]`},
		{"checks: [{name: a, kind: test, url: u, prot: 1}]", `checks[0] "a" (kind test): key "prot": unknown key (did you mean "port"?)`},
		{"checks: [{name: a, kind: test, url: u, port: x}]", `key "port": cannot unmarshal`},
		{"checks: [{name: a, kind: test, url: u, token: x, token_env: Y}]", `key "token_env": set either token or token_env`},
		{"checks: [{name: a, kind: test, url: u, token_env: NOPE}]", `key "token_env": environment variable NOPE is not set`},
		{"checks: [{name: a, kind: test, url: u, token_file: /nonexistent}]", `key "token_file": open /nonexistent`},
		{"checks: [{name: a, kind: test}]", `checks[0] "a" (kind test): key "url": missing`},
	}
	for _, c := range cases {
		specs, err := decodeSpecs(t, c.doc)
		if err == nil {
			_, err = Build(specs, BuildOptions{Secrets: src, Env: Env{Redactor: redact.NewRedactor()}})
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.doc, err, c.want)
		}
	}
}

func TestExampleYAMLDecodes(t *testing.T) {
	reg := withTestKind(t)
	specs, err := decodeSpecs(t, "checks:\n"+indentLines(ExampleYAML(reg)))
	if err != nil || len(specs) != 1 || specs[0].Kind != "test" {
		t.Fatalf("%v %+v", err, specs)
	}
	if fc := (Specs{}).ConfigFootComment(); !strings.Contains(fc, "kind: test") {
		t.Errorf("foot comment:\n%s", fc)
	}
}

func sampleReport() *Report {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	checks := []CheckReport{
		{Name: "relay", Kind: "relay_health", Status: OK, Message: "healthy", StartedAt: start, Duration: 3 * time.Millisecond,
			Timeout: 10 * time.Second, Stages: []Stage{{"healthz", 2 * time.Millisecond}}},
		{Name: "tun\"nel", Kind: "tunnel", Status: Critical, Message: "token s3cr3t refused", Stage: "connect", StartedAt: start,
			Duration: time.Second, Timeout: 10 * time.Second, Warning: time.Second, Critical: 2 * time.Second,
			Details: map[string]string{"k": "s3cr3t"}, Params: map[string]any{"token": "<redacted:token>", "port": 22}},
	}
	st, sum := summarize(checks)
	return &Report{Status: st, Summary: sum, StartedAt: start, Duration: time.Second, Checks: checks}
}

func TestTextfile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "probe.prom")
	os.WriteFile(path, []byte("old"), 0o600)
	if err := WriteTextfile(path, sampleReport()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	for _, want := range []string{
		"# TYPE warren_probe_check_status gauge\n",
		`warren_probe_check_status{check="relay",kind="relay_health"} 0`,
		`warren_probe_check_status{check="tun\"nel",kind="tunnel"} 2`,
		`warren_probe_check_success{check="tun\"nel",kind="tunnel"} 0`,
		`warren_probe_check_duration_seconds{check="tun\"nel",kind="tunnel"} 1`,
		`warren_probe_check_stage_duration_seconds{check="relay",kind="relay_health",stage="healthz"} 0.002`,
		"warren_probe_last_run_timestamp_seconds 1.767323046e+09",
		"warren_probe_status 2",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("textfile lacks %q:\n%s", want, data)
		}
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("leftover files: %v", entries)
	}
	if err := WriteTextfile(filepath.Join(dir, "nodir", "x.prom"), sampleReport()); err == nil {
		t.Error("no error for a missing directory")
	}
}

func TestArtifactsAndJSON(t *testing.T) {
	dir := t.TempDir()
	red := redact.NewRedactor()
	red.Add("token", "s3cr3t")
	rep := sampleReport()
	rep.Checks[1].Message = red.Redact(rep.Checks[1].Message)
	if err := WriteArtifacts(dir, rep, red, map[string]string{"version": "dev"}); err != nil {
		t.Fatal(err)
	}
	if rep.Checks[0].Artifact != "" {
		t.Error("artifact for an OK check")
	}
	path := filepath.Join(dir, "tun\"nel", ArtifactFile)
	if rep.Checks[1].Artifact != path {
		t.Fatalf("artifact path %q", rep.Checks[1].Artifact)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if strings.Contains(s, "s3cr3t") || !strings.Contains(s, `"token": "<redacted:token>"`) ||
		!strings.Contains(s, `"schema_version": 1`) || !strings.HasSuffix(s, "}\n") || !strings.Contains(s, "\n  \"check\"") {
		t.Errorf("artifact:\n%s", s)
	}
	var b strings.Builder
	rep.WriteJSON(&b)
	if !strings.Contains(b.String(), `"exit_code": 2`) || !strings.Contains(b.String(), `"artifact": "`+strings.ReplaceAll(path, `"`, `\"`)) {
		t.Errorf("json:\n%s", b.String())
	}
	b.Reset()
	rep.WriteText(&b)
	first, _, _ := strings.Cut(b.String(), "\n")
	if first != `CRITICAL - 2 checks: 1 OK, 1 CRITICAL; not OK: tun"nel | 'relay'=0.003000s;;;0;10 'tun"nel'=1.000000s;1;2;0;10` {
		t.Errorf("summary line %q", first)
	}
}

func FuzzSpecs(f *testing.F) {
	f.Add("checks: [{name: a, kind: test, url: u}]")
	f.Add("checks: [{name: a, kind: test, url: u, token: x, timeout: 1s, warning: 1ms}]")
	f.Add("checks:\n  - name: b\n    kind: test\n    port: [1]\n")
	f.Add("checks: 3")
	old := Default
	Default = NewRegistry()
	defer func() { Default = old }()
	Default.MustRegister(Kind{Name: "test", Params: func() any { return &testParams{} },
		New: func(any, Env) (Check, error) { return funcCheck(nil), nil }})
	src := SecretSource{ReadFile: func(string) ([]byte, error) { return nil, errors.New("no files") },
		LookupEnv: func(string) (string, bool) { return "", false }}
	f.Fuzz(func(t *testing.T, doc string) {
		var s struct {
			Checks Specs `yaml:"checks"`
		}
		if yaml.Unmarshal([]byte(doc), &s) != nil {
			return
		}
		_, _ = Build(s.Checks, BuildOptions{Secrets: src, Env: Env{Redactor: redact.NewRedactor()}})
		_, _ = yaml.Marshal(s.Checks)
		_, _ = s.Checks.MarshalJSON()
	})
}
