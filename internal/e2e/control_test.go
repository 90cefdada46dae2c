package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider/vkfake"
)

// The local control plane end to end: the built `tunnel-client control`
// runs two profiles' sessions at once through coturn to the built
// tunnel-server, driven by a real HTTP client and by the control CLI.

var controlListeningRE = regexp.MustCompile(`^listening (\S+) token_file=(\S+)`)

// controlPlane is a running `tunnel-client control`.
type controlPlane struct {
	d         *daemon
	addr      string
	token     string
	tokenFile string
	stateDir  string
	env       []string
}

func startControl(t *testing.T, extraEnv ...string) *controlPlane {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	env := cleanEnv(t, append([]string{"WARREN_TUNNEL_CLIENT_CONTROL_STATE_DIR=" + state}, extraEnv...)...)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	d := start(t, t.TempDir(), env, "tunnel-client", "control", "--listen", addr)
	m := d.stdout.wait(t, controlListeningRE, 30*time.Second)
	tok, err := os.ReadFile(m[2])
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(m[2]); st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v", st.Mode().Perm())
	}
	return &controlPlane{d: d, addr: m[1], token: strings.TrimSpace(string(tok)), tokenFile: m[2], stateDir: state,
		env: append(env, "WARREN_TUNNEL_CLIENT_CONTROL_LISTEN="+m[1])}
}

// api sends one request with the token and returns status and body.
func (c *controlPlane) api(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+c.addr+path, rd)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// cli runs a `tunnel-client control` client subcommand.
func (c *controlPlane) cli(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, t.TempDir(), c.env, "tunnel-client", append([]string{"control"}, args...)...)
}

// ctlEvent is the part of an event line the tests read.
type ctlEvent struct {
	Seq       uint64 `json:"seq"`
	Kind      string `json:"kind"`
	Profile   string `json:"profile"`
	Stage     string `json:"stage"`
	Worker    *int   `json:"worker"`
	Challenge *struct {
		ID, URL, Kind, Stage string
	} `json:"challenge"`
}

// follow streams /v1/events with a real HTTP client in the background.
type ctlStream struct {
	mu     sync.Mutex
	events []ctlEvent
}

func (c *controlPlane) follow(t *testing.T) *ctlStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.addr+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s := &ctlStream{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var ev ctlEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				s.mu.Lock()
				s.events = append(s.events, ev)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func (s *ctlStream) wait(t *testing.T, what string, match func(ctlEvent) bool) ctlEvent {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s.mu.Lock()
		for _, ev := range s.events {
			if match(ev) {
				s.mu.Unlock()
				return ev
			}
		}
		s.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestControlPlaneThroughCoturn(t *testing.T) {
	needCoturn(t)
	echo := startTURNLab(t, turnlab.Config{}) // only for its echo upstream
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), echo.EchoUDP)
	const turnPassword = "control-plane-pw"
	turnAddr := startCoturn(t, "--lt-cred-mech", "-u", "alice:"+turnPassword)
	link := fmt.Sprintf("generic-turn://alice:%s@%s", turnPassword, turnAddr)
	secrets := t.TempDir()
	pskFile := filepath.Join(secrets, "psk")
	linkFile := filepath.Join(secrets, "link")
	os.WriteFile(pskFile, []byte(key+"\n"), 0o600)
	os.WriteFile(linkFile, []byte(link+"\n"), 0o600)

	cp := startControl(t)
	if code, _ := cp.api(t, "GET", "/v1/sessions", nil); code != 200 {
		t.Fatalf("sessions: %d", code)
	}
	req, _ := http.NewRequest("GET", "http://"+cp.addr+"/v1/sessions", nil)
	req.Header.Set("Authorization", "Bearer wrong")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("wrong token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	events := cp.follow(t)

	// udp-turn references its link by file; tcp-turn has it inline (shown redacted).
	profiles := []map[string]any{
		{"name": "udp-turn", "provider": "generic-turn", "link_file": linkFile, "peer": peer, "listen": "127.0.0.1:0",
			"mode": "udp", "connections": 2, "psk_file": pskFile},
		{"name": "tcp-turn", "provider": "generic-turn", "link": link, "peer": peer, "listen": "127.0.0.1:0",
			"mode": "tcp", "connections": 2, "psk_file": pskFile},
	}
	for _, p := range profiles {
		code, body := cp.api(t, "POST", "/v1/profiles", p)
		if code != 201 || bytes.Contains(body, []byte(turnPassword)) {
			t.Fatalf("create %s: %d %s", p["name"], code, body)
		}
	}
	// Same rules and words as `tunnel-client turn`.
	code, body := cp.api(t, "POST", "/v1/profiles", map[string]any{"name": "bad", "provider": "generic-turn", "link": link,
		"peer": peer, "psk_file": pskFile, "ingress": "sctp"})
	if code != 400 || !strings.Contains(string(body), `config turn.ingress: expected udp or tcp, got \"sctp\"`) {
		t.Errorf("bad profile: %d %s", code, body)
	}
	if st, err := os.Stat(filepath.Join(cp.stateDir, "profiles", "udp-turn.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("stored profile: %v", err)
	}
	stored, _ := os.ReadFile(filepath.Join(cp.stateDir, "profiles", "udp-turn.json"))
	if bytes.Contains(stored, []byte(key)) || bytes.Contains(stored, []byte(turnPassword)) {
		t.Errorf("a profile file holds a secret:\n%s", stored)
	}

	// Both sessions through the CLI, waiting until ready.
	locals := map[string]string{}
	for _, name := range []string{"udp-turn", "tcp-turn"} {
		r := cp.cli(t, "start", name, "--wait", "60s", "-o", "json")
		r.wantCode(t, 0, "control start "+name)
		var v struct{ State, Local string }
		decodeJSON(t, r.stdout, &v)
		if v.State != "ready" || v.Local == "" {
			t.Fatalf("%s after start: %s", name, r.stdout)
		}
		locals[name] = v.Local
	}
	cp.cli(t, "start", "udp-turn").wantCode(t, 1, "starting a running session")
	cp.cli(t, "start", "no-such-profile").wantCode(t, 2, "starting an unknown profile")
	for name, local := range locals {
		c, err := net.Dial("udp4", local)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		for i := range 3 {
			udpEcho(t, c, []byte(fmt.Sprintf("%s-%d", name, i)))
		}
	}

	r := cp.cli(t, "status", "-o", "json")
	r.wantCode(t, 0, "control status")
	var views []struct {
		Profile, State string
		Workers        []struct{ State string }
		Counters       struct {
			ForwardedPackets map[string]int `json:"forwarded_packets"`
		}
	}
	decodeJSON(t, r.stdout, &views)
	if len(views) != 2 {
		t.Fatalf("status: %s", r.stdout)
	}
	for _, v := range views {
		if v.State != "ready" || len(v.Workers) != 2 || v.Workers[0].State != "ready" || v.Counters.ForwardedPackets["relay_to_local"] < 3 {
			t.Errorf("status of %s: %+v", v.Profile, v)
		}
	}
	r = cp.cli(t, "status", "tcp-turn")
	r.wantCode(t, 0, "control status tcp-turn")
	if !strings.HasPrefix(r.stdout, "tcp-turn state=ready stage=forwarding_loop") || !strings.Contains(r.stdout, "workers=2/2") {
		t.Errorf("status text: %q", r.stdout)
	}

	// Events: streamed live, and replayed by the CLI from a cursor.
	for _, name := range []string{"udp-turn", "tcp-turn"} {
		events.wait(t, name+" ready", func(ev ctlEvent) bool { return ev.Kind == "session_ready" && ev.Profile == name })
		events.wait(t, name+" worker 1 ready", func(ev ctlEvent) bool {
			return ev.Kind == "worker_ready" && ev.Profile == name && ev.Worker != nil && *ev.Worker == 1
		})
	}
	r = cp.cli(t, "events")
	r.wantCode(t, 0, "control events")
	all := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var mid ctlEvent
	json.Unmarshal([]byte(all[len(all)/2]), &mid)
	r = cp.cli(t, "events", "--after", fmt.Sprint(mid.Seq))
	r.wantCode(t, 0, "control events --after")
	rest := strings.Split(strings.TrimSpace(r.stdout), "\n")
	var first ctlEvent
	json.Unmarshal([]byte(rest[0]), &first)
	if first.Seq != mid.Seq+1 || len(rest) != len(all)-len(all)/2-1 {
		t.Errorf("resume after %d: first %d, %d lines of %d", mid.Seq, first.Seq, len(rest), len(all))
	}

	// Diagnostics: both sessions, metrics and history; no secret.
	code, bundle := cp.api(t, "GET", "/v1/diagnostics", nil)
	if code != 200 || !bytes.Contains(bundle, []byte("warren_runtime_forwarded_bytes_total")) || !bytes.Contains(bundle, []byte(`"session_ready"`)) {
		t.Fatalf("diagnostics: %d\n%s", code, bundle)
	}
	for _, secret := range []string{key, turnPassword, link, cp.token} {
		if bytes.Contains(bundle, []byte(secret)) {
			t.Errorf("diagnostics hold the secret %q", secret)
		}
	}

	// Stop one: the other keeps forwarding.
	r = cp.cli(t, "stop", "udp-turn")
	r.wantCode(t, 0, "control stop")
	if !strings.HasPrefix(r.stdout, "udp-turn state=stopped stage=shutdown") {
		t.Errorf("stop: %q", r.stdout)
	}
	events.wait(t, "udp-turn stopped", func(ev ctlEvent) bool { return ev.Kind == "session_stopped" && ev.Profile == "udp-turn" })
	c, _ := net.Dial("udp4", locals["tcp-turn"])
	defer c.Close()
	udpEcho(t, c, []byte("tcp-turn-still-up"))

	// SIGINT stops the control plane and its last session cleanly.
	stopDaemon(t, cp.d)
	if code := cp.d.exitCode(t, 30*time.Second); code != 0 {
		t.Errorf("control exit %d\n%s", code, cp.d.stderr)
	}
	logs := cp.d.stdout.String() + cp.d.stderr.String()
	for _, secret := range []string{key, turnPassword, cp.token} {
		if strings.Contains(logs, secret) {
			t.Errorf("control logs hold the secret %q", secret)
		}
	}
}

// The control API is loopback only, and its clients need the token.
func TestControlPlaneRefusals(t *testing.T) {
	r := run(t, t.TempDir(), cleanEnv(t), "tunnel-client", "control", "--listen", "0.0.0.0:7777", "--state-dir", t.TempDir())
	r.wantCode(t, 2, "non-loopback listen")
	if !strings.Contains(r.stderr, "control.listen") || !strings.Contains(r.stderr, "not a loopback address") {
		t.Errorf("stderr: %s", r.stderr)
	}
	cp := startControl(t)
	bad := filepath.Join(t.TempDir(), "token")
	os.WriteFile(bad, []byte("not-the-token\n"), 0o600)
	r = cp.cli(t, "status", "--token-file", bad)
	r.wantCode(t, 2, "wrong token")
	if !strings.Contains(r.stderr, "bearer token") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = cp.cli(t, "status", "--token-file", filepath.Join(t.TempDir(), "missing"))
	r.wantCode(t, 2, "missing token file")
}

// A vk profile through the fake VK (reached through the warren_testhooks
// build's WARREN_TEST_VK_BASE_URL) and coturn with use-auth-secret: the
// captcha surfaces as a challenge in the event stream and as a resource;
// a person (the test, reading the fake's captcha page) continues it over
// the API and the session comes up and forwards. No call token, key or
// VK session secret reaches the diagnostics bundle or the logs.
func TestControlPlaneVKChallenge(t *testing.T) {
	needCoturn(t)
	const restSecret = "control-vk-rest-secret"
	const joinToken = "controlPlaneJoinToken_7"
	turnAddr := startCoturn(t, "--use-auth-secret", "--static-auth-secret="+restSecret)
	f, err := vkfake.New(vkfake.Config{TURNAddr: turnAddr, RESTSecret: restSecret, JoinToken: joinToken, Captchas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	echo := startTURNLab(t, turnlab.Config{})
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), echo.EchoUDP)
	secrets := t.TempDir()
	pskFile, linkFile := filepath.Join(secrets, "psk"), filepath.Join(secrets, "link")
	os.WriteFile(pskFile, []byte(key+"\n"), 0o600)
	os.WriteFile(linkFile, []byte("https://vk.com/call/join/"+joinToken+"\n"), 0o600)

	cp := startControl(t, "WARREN_TEST_VK_BASE_URL="+f.URL())
	events := cp.follow(t)
	code, body := cp.api(t, "POST", "/v1/profiles", map[string]any{"name": "vk", "provider": "vk", "link_file": linkFile,
		"peer": peer, "listen": "127.0.0.1:0", "psk_file": pskFile})
	if code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	r := cp.cli(t, "start", "vk")
	r.wantCode(t, 0, "control start vk")
	if !strings.HasPrefix(r.stdout, "vk state=starting") {
		t.Errorf("start: %q", r.stdout)
	}
	ev := events.wait(t, "challenge", func(ev ctlEvent) bool { return ev.Kind == "challenge" && ev.Profile == "vk" })
	if ev.Challenge == nil || ev.Challenge.Kind != "captcha" || ev.Challenge.URL == "" {
		t.Fatalf("challenge event: %+v", ev)
	}
	r = cp.cli(t, "status", "vk")
	if !strings.Contains(r.stdout, "state=starting stage=provider_resolve") || !strings.Contains(r.stdout, "challenges="+ev.Challenge.ID) {
		t.Errorf("status while challenged: %q", r.stdout)
	}
	code, body = cp.api(t, "GET", "/v1/challenges/"+ev.Challenge.ID, nil)
	var ch struct{ URL string }
	json.Unmarshal(body, &ch)
	if code != 200 || ch.URL != ev.Challenge.URL {
		t.Fatalf("challenge resource: %d %s", code, body)
	}
	resp, err := http.Get(ch.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code, body := cp.api(t, "POST", "/v1/challenges/"+ev.Challenge.ID+"/continue", map[string]string{"key": vkfake.CaptchaAnswerFromPage(string(page))}); code != 204 {
		t.Fatalf("continue: %d %s", code, body)
	}
	events.wait(t, "vk ready", func(ev ctlEvent) bool { return ev.Kind == "session_ready" && ev.Profile == "vk" })
	r = cp.cli(t, "status", "vk", "-o", "json")
	var v struct{ State, Local string }
	decodeJSON(t, r.stdout, &v)
	if v.State != "ready" {
		t.Fatalf("after continue: %s", r.stdout)
	}
	c, _ := net.Dial("udp4", v.Local)
	defer c.Close()
	udpEcho(t, c, []byte("through-vk-and-coturn"))
	if f.Solved() != 1 || len(f.Rejects()) != 0 {
		t.Errorf("fake: solved %d, rejects %v", f.Solved(), f.Rejects())
	}

	_, bundle := cp.api(t, "GET", "/v1/diagnostics", nil)
	leaks := []string{joinToken, key, restSecret, "vkfake-access-", "vkfake-anonym-", "vkfake-session-", "vkfake-ok-"}
	for _, secret := range leaks {
		if bytes.Contains(bundle, []byte(secret)) {
			t.Errorf("diagnostics hold %q", secret)
		}
	}
	cp.cli(t, "stop", "vk").wantCode(t, 0, "control stop vk")
	stopDaemon(t, cp.d)
	cp.d.exitCode(t, 30*time.Second)
	logs := cp.d.stdout.String() + cp.d.stderr.String()
	for _, secret := range leaks {
		if strings.Contains(logs, secret) {
			t.Errorf("control logs hold %q", secret)
		}
	}
}
