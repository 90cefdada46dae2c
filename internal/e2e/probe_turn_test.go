package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenhq/warren/internal/turn/turnlab"
)

// probe's TURN side with the built binaries: `probe providers`, `probe
// resolve` (docs/protocols/turn-overlay.md §3.6, §6.12-13) and `probe run` with the
// turn_allocate, dtls_handshake and overlay_echo kinds against the
// in-process pion TURN lab and a real tunnel-server binary.

func TestProbeProviders(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv(t)
	r := run(t, dir, env, "probe", "providers")
	r.wantCode(t, 0, "probe providers")
	if r.stdout != "generic-turn\nturn-rest\nvk\n" {
		t.Errorf("probe providers:\n%s", r.stdout)
	}
	r = run(t, dir, env, "probe", "providers", "-o", "json")
	r.wantCode(t, 0, "probe providers -o json")
	var names []string
	decodeJSON(t, r.stdout, &names)
	if strings.Join(names, ",") != "generic-turn,turn-rest,vk" {
		t.Errorf("probe providers -o json: %s", r.stdout)
	}
	r = run(t, dir, env, "probe", "resolve", "--list-providers")
	r.wantCode(t, 0, "probe resolve --list-providers")
	if r.stdout != "generic-turn\nturn-rest\nvk\n" {
		t.Errorf("probe resolve --list-providers:\n%s", r.stdout)
	}
}

// resolveArtifact is the docs/protocols/turn-overlay.md §3.6 schema, decoded strictly.
type resolveArtifact struct {
	Provider         string `json:"provider"`
	ResolutionMethod string `json:"resolution_method"`
	Input            struct {
		LinkRedacted string `json:"link_redacted"`
	} `json:"input"`
	Stages []struct {
		Name       string `json:"name"`
		EndpointID string `json:"endpoint_id"`
		Request    struct {
			Method         string   `json:"method"`
			FormKeys       []string `json:"form_keys"`
			RedactedFields []string `json:"redacted_fields"`
		} `json:"request"`
		Response struct {
			StatusCode int    `json:"status_code"`
			Body       string `json:"body"`
		} `json:"response"`
		Outcome struct {
			Kind      string   `json:"kind"`
			Extracted []string `json:"extracted"`
			ErrorCode string   `json:"error_code"`
		} `json:"outcome"`
	} `json:"stages"`
	Outcome struct {
		ResultKind string `json:"result_kind"`
		Resolution *struct {
			UsernameRedacted string `json:"username_redacted"`
			PasswordRedacted string `json:"password_redacted"`
			Address          string `json:"address"`
		} `json:"resolution"`
		ProviderError *struct {
			Stage string `json:"stage"`
			Code  string `json:"code"`
		} `json:"provider_error"`
	} `json:"outcome"`
}

func readResolveArtifact(t *testing.T, path string) (resolveArtifact, string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("%s mode %v, want 0644", path, st.Mode().Perm())
	}
	if dst, _ := os.Stat(filepath.Dir(path)); dst == nil || dst.Mode().Perm() != 0o755 {
		t.Errorf("%s: dir mode not 0755", path)
	}
	data, _ := os.ReadFile(path)
	if !strings.HasSuffix(string(data), "}\n") || strings.HasSuffix(string(data), "\n\n") {
		t.Errorf("%s does not end in exactly one newline", path)
	}
	if !strings.Contains(string(data), "\n  \"provider\": ") {
		t.Errorf("%s is not 2-space indented:\n%s", path, data)
	}
	var a resolveArtifact
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%s: %v\n%s", path, err, data)
	}
	return a, string(data)
}

func TestProbeResolve(t *testing.T) {
	dir := t.TempDir()
	const user, pass, restSecret = "probe-turn-user", "probe-turn-pass-8899", "probe-rest-secret-4433"
	secrets := []string{user, pass, restSecret}
	link := fmt.Sprintf("generic-turn://%s:%s@127.0.0.1:3478", user, pass)

	// Success; the link comes from env so that the password stays off argv.
	r := run(t, dir, cleanEnv(t, "WARREN_PROBE_RESOLVE_LINK="+link), "probe", "resolve", "--provider", "generic-turn")
	r.wantCode(t, 0, "probe resolve generic-turn")
	wantLine := "provider=generic-turn turn_addr=127.0.0.1:3478 ttl=0s stages=1 artifact=artifacts/generic-turn/probe-artifact.json\n"
	if r.stdout != wantLine {
		t.Errorf("stdout %q, want %q", r.stdout, wantLine)
	}
	a, raw := readResolveArtifact(t, filepath.Join(dir, "artifacts", "generic-turn", "probe-artifact.json"))
	if a.Provider != "generic-turn" || a.ResolutionMethod != "static_link" || len(a.Stages) != 1 ||
		a.Stages[0].Name != "generic_turn_static_link" || a.Stages[0].Request.Method != "PARSE" ||
		a.Outcome.ResultKind != "resolved" || a.Outcome.Resolution == nil ||
		a.Outcome.Resolution.UsernameRedacted != "<redacted:turn-username>" ||
		a.Outcome.Resolution.PasswordRedacted != "<redacted:turn-password>" ||
		a.Outcome.Resolution.Address != "127.0.0.1:3478" {
		t.Errorf("artifact:\n%s", raw)
	}
	assertNoSecrets(t, "generic-turn artifact", raw, secrets)
	assertNoSecrets(t, "probe resolve output", r.stdout+r.stderr, secrets)

	// turn-rest with the secret from env and from a *_file key in probe.yaml; -o json.
	secretFile := filepath.Join(dir, "rest-secret")
	os.WriteFile(secretFile, []byte(restSecret+"\n"), 0o600)
	// Not ./probe.yaml of the run dir: that one would be read by every run.
	cfgFile := filepath.Join(t.TempDir(), "probe-rest.yaml")
	os.WriteFile(cfgFile, []byte("turn_rest_secret_file: "+secretFile+"\n"), 0o600)
	restLink := "turn-rest://" + user + "@turn.example:3478?ttl=10m"
	for _, how := range []struct {
		name string
		env  []string
		args []string
	}{
		{"env", []string{"WARREN_PROBE_TURN_REST_SECRET=" + restSecret}, nil},
		{"config file", nil, []string{"-c", cfgFile}},
	} {
		out := filepath.Join(dir, "rest-"+strings.ReplaceAll(how.name, " ", "-"))
		args := append(append([]string{}, how.args...), "resolve", "--provider", "turn-rest", "--link", restLink, "--output-dir", out, "-o", "json")
		r = run(t, dir, cleanEnv(t, how.env...), "probe", args...)
		r.wantCode(t, 0, "probe resolve turn-rest, secret from "+how.name)
		var got map[string]any
		decodeJSON(t, r.stdout, &got)
		if got["provider"] != "turn-rest" || got["turn_addr"] != "turn.example:3478" || got["ttl"] != "10m0s" ||
			got["artifact"] != filepath.Join(out, "turn-rest", "probe-artifact.json") {
			t.Errorf("secret from %s: %s", how.name, r.stdout)
		}
		a, raw := readResolveArtifact(t, filepath.Join(out, "turn-rest", "probe-artifact.json"))
		if a.ResolutionMethod != "turn_rest" || a.Outcome.ResultKind != "resolved" {
			t.Errorf("turn-rest artifact:\n%s", raw)
		}
		// The generated username is "<expiry>:<user>": the user alone shows
		// only redacted in the link.
		assertNoSecrets(t, "turn-rest artifact", raw, secrets)
		assertNoSecrets(t, "turn-rest output", r.stdout+r.stderr, secrets)
	}

	// The secret has no flag of its own (docs/protocols/turn-overlay.md §6.15): only --turn-rest-secret-file.
	r = run(t, dir, cleanEnv(t), "probe", "resolve", "--provider", "turn-rest", "--link", restLink, "--turn-rest-secret", restSecret)
	r.wantCode(t, 3, "probe resolve --turn-rest-secret VALUE")
	if !strings.Contains(r.stderr, "unknown flag: --turn-rest-secret") {
		t.Errorf("--turn-rest-secret VALUE: %s", r.stderr)
	}
	assertNoSecrets(t, "unknown flag error", r.stdout+r.stderr, secrets)

	// Failures: stderr "artifact_path=..." then "probe failed: ...".
	cases := []struct {
		name     string
		env      []string
		args     []string
		code     int
		provider string // artifact dir; "" none
		msg      string
	}{
		{"vk", nil, []string{"--provider", "vk", "--link", "x"}, 2, "vk", `probe failed: vk stage vk_invite_link [invalid_link]: invalid vk link`},
		{"query", []string{"WARREN_PROBE_RESOLVE_LINK=generic-turn://u:" + pass + "@h:3478?transport=tcp"}, []string{"--provider", "generic-turn"}, 2,
			"generic-turn", "probe failed: invalid generic-turn link: query is not supported"},
		{"empty user", nil, []string{"--provider", "generic-turn", "--link", "generic-turn://:pw@h:3478"}, 2, "generic-turn", "probe failed: invalid generic-turn link: username must not be empty"},
		{"port", nil, []string{"--provider", "generic-turn", "--link", "generic-turn://u:pw@h:70000"}, 2, "generic-turn", "probe failed: invalid generic-turn link: port must be 1-65535"},
		{"rest secret in link", []string{"WARREN_PROBE_TURN_REST_SECRET=" + restSecret}, []string{"--provider", "turn-rest", "--link", "turn-rest://u:pw@h:3478"}, 2,
			"turn-rest", "probe failed: invalid turn-rest link: secret must not be in the link"},
		{"rest no secret", nil, []string{"--provider", "turn-rest", "--link", "turn-rest://u@h:3478"}, 3, "turn-rest", "probe failed: turn-rest needs the shared secret: set WARREN_PROBE_TURN_REST_SECRET"},
		{"unknown provider", nil, []string{"--provider", "nope", "--link", "x"}, 3, "", `probe failed: provider "nope" is not registered`},
		{"no link", nil, []string{"--provider", "vk"}, 3, "", "resolve.link: not set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			r := run(t, d, cleanEnv(t, tc.env...), "probe", append([]string{"resolve"}, tc.args...)...)
			r.wantCode(t, tc.code, "probe resolve "+tc.name)
			if r.stdout != "" {
				t.Errorf("stdout %q", r.stdout)
			}
			if !strings.Contains(r.stderr, tc.msg) {
				t.Errorf("stderr %q, want %q", r.stderr, tc.msg)
			}
			if tc.provider == "" {
				return
			}
			path := filepath.Join("artifacts", tc.provider, "probe-artifact.json")
			if !strings.HasPrefix(r.stderr, "artifact_path="+path+"\nprobe failed: ") {
				t.Errorf("stderr %q, want artifact_path=%s first", r.stderr, path)
			}
			a, raw := readResolveArtifact(t, filepath.Join(d, path))
			if a.Outcome.ResultKind != "provider_error" || a.Outcome.ProviderError == nil || a.Outcome.Resolution != nil {
				t.Errorf("failure artifact:\n%s", raw)
			}
			assertNoSecrets(t, "failure artifact", raw, secrets)
			assertNoSecrets(t, "failure stderr", r.stderr, secrets)
		})
	}
}

// TestProbeRunTURN: the three TURN kinds OK and CRITICAL through the built
// probe and tunnel-server; no secret in stdout, stderr, textfile or
// artifacts.
func TestProbeRunTURN(t *testing.T) {
	const restSecret = "probe-run-rest-secret-9911"
	lab := startTURNLab(t, turnlab.Config{RESTSecret: restSecret})
	key, wrongKey := newKey(t), newKey(t)
	srv, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), lab.EchoUDP)
	_, compatPeer := startTunnelServer(t, cleanEnv(t), lab.EchoUDP, "--compat-unauthenticated")
	dir := t.TempDir()
	pskFile := filepath.Join(dir, "psk")
	os.WriteFile(pskFile, []byte(key+"\n"), 0o600)
	const wrongPass = "wrong-turn-pass-2211"
	link := func(addr, pw string) string {
		return fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, pw, addr)
	}
	env := cleanEnv(t, "PROBE_LINK_UDP="+link(lab.TURNUDP, turnlab.Password), "PROBE_LINK_TCP="+link(lab.TURNTCP, turnlab.Password),
		"PROBE_LINK_BAD="+link(lab.TURNUDP, wrongPass), "PROBE_PSK_WRONG="+wrongKey, "PROBE_REST="+restSecret,
		"PROBE_TURN_PASS="+turnlab.Password)
	secrets := []string{turnlab.User, turnlab.Password, key, wrongKey, restSecret, wrongPass}
	write := func(name, checks string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("checks:\n"+checks), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", fmt.Sprintf(`  - name: alloc-udp
    kind: turn_allocate
    provider: generic-turn
    link_env: PROBE_LINK_UDP
  - name: alloc-tcp
    kind: turn_allocate
    provider: generic-turn
    link_env: PROBE_LINK_TCP
    transport: tcp
  - name: alloc-rest
    kind: turn_allocate
    provider: turn-rest
    link: turn-rest://probe@%[1]s?ttl=5m
    turn_rest_secret_env: PROBE_REST
  - name: dtls
    kind: dtls_handshake
    peer: %[2]s
    psk_file: %[3]s
  - name: dtls-compat
    kind: dtls_handshake
    peer: %[4]s
    compat_unauthenticated: true
  - name: echo
    kind: overlay_echo
    provider: generic-turn
    link_env: PROBE_LINK_UDP
    peer: %[2]s
    psk_file: %[3]s
  - name: echo-tcp-static
    kind: overlay_echo
    server: %[5]s
    username: %[6]s
    password_env: PROBE_TURN_PASS
    transport: tcp
    peer: %[2]s
    psk_file: %[3]s
`, lab.TURNUDP, peer, pskFile, compatPeer, lab.TURNTCP, turnlab.User))
	textfile := filepath.Join(dir, "probe.prom")
	arts := filepath.Join(dir, "artifacts")
	r := run(t, dir, env, "probe", "-c", good, "run", "-o", "json", "--textfile", textfile, "--artifacts", arts)
	r.wantCode(t, 0, "probe run, TURN kinds OK")
	var rep probeJSON
	decodeJSON(t, r.stdout, &rep)
	if len(rep.Checks) != 7 {
		t.Fatalf("report: %s", r.stdout)
	}
	for _, c := range rep.Checks {
		if c.Status != "OK" {
			t.Errorf("%s: %s %q", c.Name, c.Status, c.Message)
		}
	}
	assertNoSecrets(t, "probe run stdout", r.stdout+r.stderr, secrets)
	// The text form names what was found.
	r = run(t, dir, env, "probe", "-c", good, "run")
	r.wantCode(t, 0, "probe run text, TURN kinds OK")
	for _, want := range []string{"OK - 7 checks: 7 OK", "nonce echoed through TURN", "psk handshake with " + peer, "compat handshake"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	assertNoSecrets(t, "probe run text", r.stdout+r.stderr, secrets)

	bad := write("bad.yaml", fmt.Sprintf(`  - name: alloc-wrong-pass
    kind: turn_allocate
    provider: generic-turn
    link_env: PROBE_LINK_BAD
  - name: dtls-wrong-psk
    kind: dtls_handshake
    peer: %[1]s
    psk_env: PROBE_PSK_WRONG
    timeout: 5s
  - name: echo-wrong-psk
    kind: overlay_echo
    provider: generic-turn
    link_env: PROBE_LINK_UDP
    peer: %[1]s
    psk_env: PROBE_PSK_WRONG
    timeout: 5s
  - name: alloc-vk
    kind: turn_allocate
    provider: vk
    link: x
`, peer))
	r = run(t, dir, env, "probe", "-c", bad, "run", "-o", "json", "--textfile", textfile, "--artifacts", arts)
	r.wantCode(t, 2, "probe run, TURN kinds failing")
	rep = probeJSON{}
	decodeJSON(t, r.stdout, &rep)
	want := map[string][3]string{
		"alloc-wrong-pass": {"CRITICAL", "turn_allocate", "refused the credentials"},
		"dtls-wrong-psk":   {"CRITICAL", "dtls_handshake", `identity "default" with this key`},
		"echo-wrong-psk":   {"CRITICAL", "dtls_handshake", "via relay"},
		"alloc-vk":         {"CRITICAL", "provider_resolve", "vk stage vk_invite_link [invalid_link]"},
	}
	for _, c := range rep.Checks {
		w := want[c.Name]
		if c.Status != w[0] || c.Stage != w[1] || !strings.Contains(c.Message, w[2]) {
			t.Errorf("%s: %s stage=%s %q; want %v", c.Name, c.Status, c.Stage, c.Message, w)
		}
		if c.Artifact == "" {
			t.Errorf("%s: no artifact", c.Name)
		}
	}
	assertNoSecrets(t, "probe run stdout (failing)", r.stdout+r.stderr, secrets)

	// tunnel-server gone: CRITICAL at dtls_handshake for both kinds.
	stopDaemon(t, srv)
	down := write("down.yaml", fmt.Sprintf(`  - name: dtls-down
    kind: dtls_handshake
    peer: %[1]s
    psk_file: %[2]s
    timeout: 3s
  - name: echo-down
    kind: overlay_echo
    provider: generic-turn
    link_env: PROBE_LINK_UDP
    peer: %[1]s
    psk_file: %[2]s
    timeout: 3s
`, peer, pskFile))
	r = run(t, dir, env, "probe", "-c", down, "run", "--textfile", textfile, "--artifacts", arts)
	r.wantCode(t, 2, "probe run, tunnel-server down")
	if !strings.HasPrefix(r.stdout, "CRITICAL - 2 checks: 2 CRITICAL") || strings.Count(r.stdout, "dtls_handshake") < 2 {
		t.Errorf("tunnel-server down:\n%s", r.stdout)
	}
	assertNoSecrets(t, "probe run (down)", r.stdout+r.stderr, secrets)

	if n := assertTreeHasNoSecrets(t, arts, secrets); n < 6 {
		t.Errorf("%d artifacts, want at least 6", n)
	}
	tf, _ := os.ReadFile(textfile)
	assertNoSecrets(t, "textfile", string(tf), secrets)
	if !strings.Contains(string(tf), "echo-down") {
		t.Errorf("textfile lacks the last run:\n%s", tf)
	}
	// config show redacts literal secrets of the TURN kinds.
	r = run(t, dir, env, "probe", "-c", good, "config", "show")
	r.wantCode(t, 0, "probe config show")
	if !strings.Contains(r.stdout, "link_env: PROBE_LINK_UDP") {
		t.Errorf("config show:\n%s", r.stdout)
	}
	assertNoSecrets(t, "config show", r.stdout, secrets)
}

// TestProbeTURNCoturn: a wrong password against coturn is a 401 at
// turn_allocate; the right one allocates.
func TestProbeTURNCoturn(t *testing.T) {
	needCoturn(t)
	addr := startCoturn(t, "--lt-cred-mech", "-u", "alice:secretpw")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "probe.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`checks:
  - {name: coturn-ok, kind: turn_allocate, server: "%[1]s", username: alice, password_env: GOOD}
  - {name: coturn-401, kind: turn_allocate, server: "%[1]s", username: alice, password_env: BAD}
  - {name: coturn-tcp, kind: turn_allocate, provider: generic-turn, link_env: LINK, transport: tcp}
`, addr)), 0o600)
	env := cleanEnv(t, "GOOD=secretpw", "BAD=not-the-password", "LINK=generic-turn://alice:secretpw@"+addr)
	r := run(t, dir, env, "probe", "-c", cfg, "run", "-o", "json")
	r.wantCode(t, 2, "probe run against coturn")
	var rep probeJSON
	decodeJSON(t, r.stdout, &rep)
	for _, c := range rep.Checks {
		switch c.Name {
		case "coturn-ok", "coturn-tcp":
			if c.Status != "OK" {
				t.Errorf("%s: %s %q", c.Name, c.Status, c.Message)
			}
		case "coturn-401":
			if c.Status != "CRITICAL" || c.Stage != "turn_allocate" || !strings.Contains(c.Message, "refused the credentials (401 Unauthorized") {
				t.Errorf("%s: %s %s %q", c.Name, c.Status, c.Stage, c.Message)
			}
		}
	}
	assertNoSecrets(t, "coturn run", r.stdout+r.stderr, []string{"secretpw", "not-the-password"})
}
