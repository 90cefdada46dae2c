package checks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
	"go.yaml.in/yaml/v3"
)

const labRESTSecret = "lab-rest-secret-7788"

func startLab(t *testing.T) *turnlab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab, err := turnlab.Start(ctx, turnlab.Config{RESTSecret: labRESTSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

func testKey(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startTunnelServer runs an in-process tunnel-server in front of upstream
// with key for identity "default" (none: compat only) and returns its
// address and a stop function.
func startTunnelServer(t *testing.T, upstream, key string, compat bool) (string, func()) {
	t.Helper()
	keys := map[string][]byte{}
	if key != "" {
		k, _ := base64.StdEncoding.DecodeString(key)
		keys["default"] = k
	}
	s, err := turnserver.New(turnserver.Config{Listen: "127.0.0.1:0", Connect: upstream, Keys: keys, Compat: compat,
		HandshakeTimeout: 5 * time.Second}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return addr.String(), func() {
		select {
		case <-done:
		default:
			stop()
		}
	}
}

// runChecks builds doc (a checks list) with env for secrets and runs it
// through probe's runner, so messages and details come back redacted.
func runChecks(t *testing.T, env map[string]string, doc string) map[string]probe.CheckReport {
	t.Helper()
	registry(t)
	var s struct {
		Checks probe.Specs `yaml:"checks"`
	}
	if err := yaml.Unmarshal([]byte("checks:\n"+doc), &s); err != nil {
		t.Fatal(err)
	}
	red := redact.NewRedactor()
	built, err := probe.Build(s.Checks, probe.BuildOptions{Env: probe.Env{Redactor: red},
		Secrets: probe.SecretSource{LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rep := (&probe.Runner{Checks: built, Redactor: red}).Run(ctx)
	out := map[string]probe.CheckReport{}
	for _, c := range rep.Checks {
		out[c.Name] = c
	}
	return out
}

func assertClean(t *testing.T, c probe.CheckReport, secrets ...string) {
	t.Helper()
	b, _ := json.Marshal(c)
	for _, s := range secrets {
		if strings.Contains(string(b), s) {
			t.Errorf("%s: the report holds a secret %.6s...: %s", c.Name, s, b)
		}
	}
}

func stageNames(c probe.CheckReport) string {
	var n []string
	for _, s := range c.Stages {
		n = append(n, s.Name)
	}
	return strings.Join(n, ",")
}

func TestTURNOverlayChecks(t *testing.T) {
	lab := startLab(t)
	key, wrongKey := testKey(t), testKey(t)
	peer, _ := startTunnelServer(t, lab.EchoUDP, key, false)
	compatPeer, _ := startTunnelServer(t, lab.EchoUDP, "", true)
	link := func(addr, pw string) string {
		return fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, pw, addr)
	}
	const wrongPW = "wrong-turn-pass-5566"
	env := map[string]string{
		"LINK_UDP": link(lab.TURNUDP, turnlab.Password), "LINK_TCP": link(lab.TURNTCP, turnlab.Password),
		"LINK_BAD": link(lab.TURNUDP, wrongPW), "PSK": key, "PSK_WRONG": wrongKey,
		"REST": labRESTSecret, "USER": turnlab.User, "PASS": turnlab.Password,
	}
	secrets := []string{turnlab.Password, key, wrongKey, labRESTSecret, wrongPW}
	reports := runChecks(t, env, fmt.Sprintf(`
  - {name: alloc-udp, kind: turn_allocate, provider: generic-turn, link_env: LINK_UDP}
  - {name: alloc-tcp, kind: turn_allocate, provider: generic-turn, link_env: LINK_TCP, transport: tcp}
  - {name: alloc-static, kind: turn_allocate, server: "%[1]s", username_env: USER, password_env: PASS}
  - {name: alloc-rest, kind: turn_allocate, provider: turn-rest, link: "turn-rest://probe@%[1]s?ttl=5m", turn_rest_secret_env: REST}
  - {name: alloc-401, kind: turn_allocate, provider: generic-turn, link_env: LINK_BAD}
  - {name: alloc-vk, kind: turn_allocate, provider: vk, link: x}
  - {name: dtls-psk, kind: dtls_handshake, peer: "%[2]s", psk_env: PSK}
  - {name: dtls-compat, kind: dtls_handshake, peer: "%[3]s", compat_unauthenticated: true}
  - {name: dtls-wrong, kind: dtls_handshake, peer: "%[2]s", psk_env: PSK_WRONG, timeout: 5s}
  - {name: dtls-compat-refused, kind: dtls_handshake, peer: "%[2]s", compat_unauthenticated: true, timeout: 5s}
  - {name: echo-udp, kind: overlay_echo, provider: generic-turn, link_env: LINK_UDP, peer: "%[2]s", psk_env: PSK}
  - {name: echo-tcp, kind: overlay_echo, provider: generic-turn, link_env: LINK_TCP, transport: tcp, peer: "%[2]s", psk_env: PSK, bytes: 1000}
  - {name: echo-compat, kind: overlay_echo, server: "%[1]s", username_env: USER, password_env: PASS, peer: "%[3]s", compat_unauthenticated: true}
  - {name: echo-wrong-psk, kind: overlay_echo, provider: generic-turn, link_env: LINK_UDP, peer: "%[2]s", psk_env: PSK_WRONG, timeout: 5s}
  - {name: echo-401, kind: overlay_echo, provider: generic-turn, link_env: LINK_BAD, peer: "%[2]s", psk_env: PSK}
`, lab.TURNUDP, peer, compatPeer))

	want := []struct {
		name   string
		status probe.Status
		stage  string
		msg    string
		stages string
	}{
		{"alloc-udp", probe.OK, "", "allocated on " + lab.TURNUDP + " over udp (provider generic-turn)", "provider_resolve,turn_dial,turn_allocate"},
		{"alloc-tcp", probe.OK, "", "over tcp", "provider_resolve,turn_dial,turn_allocate"},
		{"alloc-static", probe.OK, "", "provider static", ""},
		{"alloc-rest", probe.OK, "", "provider turn-rest", ""},
		{"alloc-401", probe.Critical, "turn_allocate", "refused the credentials (400 Bad Request", "provider_resolve,turn_dial,turn_allocate"},
		{"alloc-vk", probe.Critical, "provider_resolve", `vk stage vk_invite_link [invalid_link]`, "provider_resolve"},
		{"dtls-psk", probe.OK, "", "psk handshake with " + peer, "dtls_handshake"},
		{"dtls-compat", probe.OK, "", "compat handshake", ""},
		{"dtls-wrong", probe.Critical, "dtls_handshake", `does it know identity "default" with this key?`, "dtls_handshake"},
		{"dtls-compat-refused", probe.Critical, "dtls_handshake", "compat handshake with", ""},
		{"echo-udp", probe.OK, "", "32-byte nonce echoed through TURN", "provider_resolve,turn_dial,turn_allocate,dtls_handshake,forwarding_loop"},
		{"echo-tcp", probe.OK, "", "1000-byte nonce echoed", ""},
		{"echo-compat", probe.OK, "", "compat tunnel-server", ""},
		{"echo-wrong-psk", probe.Critical, "dtls_handshake", "via relay 127.0.0.1:", "provider_resolve,turn_dial,turn_allocate,dtls_handshake"},
		{"echo-401", probe.Critical, "turn_allocate", "refused the credentials", ""},
	}
	for _, w := range want {
		c, ok := reports[w.name]
		if !ok {
			t.Errorf("%s: no report", w.name)
			continue
		}
		if c.Status != w.status || c.Stage != w.stage || !strings.Contains(c.Message, w.msg) {
			t.Errorf("%s: %s stage=%q %q; want %s stage=%q containing %q", w.name, c.Status, c.Stage, c.Message, w.status, w.stage, w.msg)
		}
		if w.stages != "" && stageNames(c) != w.stages {
			t.Errorf("%s: stages %s, want %s", w.name, stageNames(c), w.stages)
		}
		assertClean(t, c, secrets...)
	}
	if d := reports["alloc-udp"].Details; !strings.HasPrefix(d["relayed_addr"], "127.0.0.1:") || d["turn_addr"] != lab.TURNUDP {
		t.Errorf("alloc-udp details %v", d)
	}
	if d := reports["dtls-psk"].Details; d["cipher_suite"] != "TLS_PSK_WITH_AES_128_GCM_SHA256" {
		t.Errorf("dtls-psk details %v", d)
	}
	// The REST username holds the user name after "<expiry>:"; the
	// generated credentials are redacted wherever they would show.
	if strings.Contains(fmt.Sprint(reports["alloc-rest"].Details), ":probe") {
		t.Errorf("alloc-rest details hold the REST username: %v", reports["alloc-rest"].Details)
	}
}

// TestTURNOverlayChecksDown: a stopped tunnel-server and a TURN server that
// never answers are CRITICAL at the right stage within the timeout.
func TestTURNOverlayChecksDown(t *testing.T) {
	lab := startLab(t)
	key := testKey(t)
	peer, stop := startTunnelServer(t, lab.EchoUDP, key, false)
	stop()
	// A UDP socket that reads and never answers: a TURN server gone silent.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := silent.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	env := map[string]string{"PSK": key,
		"LINK":        fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNUDP),
		"LINK_SILENT": fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, silent.LocalAddr())}
	reports := runChecks(t, env, fmt.Sprintf(`
  - {name: dtls-down, kind: dtls_handshake, peer: "%[1]s", psk_env: PSK, timeout: 3s}
  - {name: echo-down, kind: overlay_echo, provider: generic-turn, link_env: LINK, peer: "%[1]s", psk_env: PSK, timeout: 3s}
  - {name: alloc-silent, kind: turn_allocate, provider: generic-turn, link_env: LINK_SILENT, timeout: 2s}
`, peer))
	for name, stage := range map[string]string{"dtls-down": "dtls_handshake", "echo-down": "dtls_handshake", "alloc-silent": "turn_allocate"} {
		c := reports[name]
		if c.Status != probe.Critical || c.Stage != stage {
			t.Errorf("%s: %s stage=%q %q; want CRITICAL at %s", name, c.Status, c.Stage, c.Message, stage)
		}
		assertClean(t, c, key, turnlab.Password)
	}
	if m := reports["alloc-silent"].Message; !strings.Contains(m, "timed out after 2s") {
		t.Errorf("alloc-silent: %q", m)
	}
}

func TestTURNParamErrors(t *testing.T) {
	reg := registry(t)
	cases := []struct{ doc, want string }{
		{"  - {name: a, kind: turn_allocate}", `key "provider": missing`},
		{"  - {name: a, kind: turn_allocate, provider: nope, link: x}", `key "provider": provider "nope" is not registered`},
		{"  - {name: a, kind: turn_allocate, provider: generic-turn}", `key "link": missing`},
		{"  - {name: a, kind: turn_allocate, provider: turn-rest, link: 'turn-rest://u@h:1'}", `key "turn_rest_secret": missing`},
		{"  - {name: a, kind: turn_allocate, provider: generic-turn, link: x, server: 'h:1'}", `key "server": set either`},
		{"  - {name: a, kind: turn_allocate, server: 'h:1', username: u}", `key "password": missing`},
		{"  - {name: a, kind: turn_allocate, server: h, username: u, password: p}", `key "server": expected`},
		{"  - {name: a, kind: turn_allocate, server: 'h:1', username: u, password: p, transport: quic}", `key "transport": expected udp or tcp`},
		{"  - {name: a, kind: dtls_handshake}", `key "peer": expected`},
		{"  - {name: a, kind: dtls_handshake, peer: 'h:1'}", `key "psk": missing`},
		{"  - {name: a, kind: dtls_handshake, peer: 'h:1', psk: 'c2hvcnQ='}", `key "psk": key is 5 bytes`},
		{"  - {name: a, kind: dtls_handshake, peer: 'h:1', psk: 'x', compat_unauthenticated: true}", `set either psk or compat_unauthenticated`},
		{"  - {name: a, kind: overlay_echo, server: 'h:1', username: u, password: p, peer: 'h:2', compat_unauthenticated: true, bytes: 5000}", `key "bytes": must be 16-1200`},
	}
	for _, c := range cases {
		_, err := build(t, reg, redact.NewRedactor(), c.doc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
		var se *probe.SpecError
		if !errors.As(err, &se) || se.Name != "a" {
			t.Errorf("%s: not a SpecError naming the check: %#v", c.doc, err)
		}
	}
}
