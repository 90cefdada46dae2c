package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider/vkfake"
)

// The vk provider end to end: the built probe and tunnel-client resolve a
// VK invite through vkfake (reached through WARREN_TEST_VK_BASE_URL, which
// only the warren_testhooks build reads) and carry data through a real
// TURN server with the credentials the fake hands out.

const (
	vkJoin   = "e2eJoinToken_42"
	vkLink   = "https://vk.com/call/join/" + vkJoin
	vkSecret = "vk-e2e-rest-secret-5150"
)

// vkFaultCodes is the stage code each fault of the fake must produce.
var vkFaultCodes = map[vkfake.Fault]string{
	vkfake.LoginHTTP500: "unexpected_status", vkfake.LoginNotJSON: "decode_response", vkfake.LoginMissingAccessToken: "missing_access_token",
	vkfake.TokenAPIError: "api_error", vkfake.TokenMissingToken: "missing_anonymous_token",
	vkfake.OKLoginAPIError: "api_error", vkfake.OKLoginMissingSessionKey: "missing_session_key",
	vkfake.JoinAPIError: "api_error", vkfake.JoinMissingTURNServer: "missing_turn_server", vkfake.JoinMissingUsername: "missing_turn_username",
	vkfake.JoinMissingCredential: "missing_turn_credential", vkfake.JoinMissingURL: "missing_turn_url", vkfake.JoinInvalidURL: "invalid_turn_url",
	vkfake.JoinExpired: "expired_credentials",
}

// vkSecrets must never reach an artifact or the output: the join token,
// the fake's tokens and session keys (by prefix), captcha answers, the
// TURN REST secret.
var vkSecrets = []string{vkJoin, "vkfake-access-", "vkfake-anonym-", "vkfake-session-", "vkfake-ok-", vkSecret}

func startVKFake(t *testing.T, cfg vkfake.Config) *vkfake.Server {
	t.Helper()
	cfg.JoinToken, cfg.RESTSecret = vkJoin, vkSecret
	f, err := vkfake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func vkEnv(t *testing.T, f *vkfake.Server, extra ...string) []string {
	return cleanEnv(t, append([]string{"WARREN_TEST_VK_BASE_URL=" + f.URL()}, extra...)...)
}

// startStdin is start with a pipe to the binary's stdin.
func startStdin(t *testing.T, dir string, env []string, bin string, args ...string) (*daemon, io.WriteCloser) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	d := startIn(t, dir, env, r, bin, args...)
	r.Close() // the binary holds its own copy
	return d, w
}

var challengeRE = regexp.MustCompile(`^challenge: open (\S+) in a browser$`)

// answerCaptcha does what the person does: opens the page the binary
// printed and types back what it shows.
func answerCaptcha(t *testing.T, d *daemon, in io.Writer) {
	t.Helper()
	url := d.stderr.wait(t, challengeRE, 30*time.Second)[1]
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answer := vkfake.CaptchaAnswerFromPage(string(page))
	if answer == "" {
		t.Fatalf("captcha page %s: %q", url, page)
	}
	fmt.Fprintln(in, answer)
}

func TestVKProbeResolve(t *testing.T) {
	f := startVKFake(t, vkfake.Config{TURNAddr: "127.0.0.1:3478", TTL: 10 * time.Minute})
	env := vkEnv(t, f, "WARREN_PROBE_RESOLVE_LINK="+vkLink)

	t.Run("resolves", func(t *testing.T) {
		dir := t.TempDir()
		r := run(t, dir, env, "probe", "resolve", "--provider", "vk")
		r.wantCode(t, 0, "probe resolve vk")
		if !regexp.MustCompile(`^provider=vk turn_addr=127\.0\.0\.1:3478 ttl=(9m59|10m0)s stages=4 artifact=artifacts/vk/probe-artifact.json\n$`).MatchString(r.stdout) {
			t.Errorf("stdout %q", r.stdout)
		}
		a, raw := readResolveArtifact(t, filepath.Join(dir, "artifacts", "vk", "probe-artifact.json"))
		var names []string
		for _, s := range a.Stages {
			names = append(names, s.Name+":"+s.Outcome.Kind)
		}
		if strings.Join(names, ",") != "vk_login_anonym_token:ok,vk_calls_get_anonymous_token:ok,ok_anonym_login:ok,ok_join_conversation_by_link:ok" ||
			a.Provider != "vk" || a.ResolutionMethod != "staged_http" || a.Outcome.ResultKind != "resolved" ||
			a.Input.LinkRedacted != "https://vk.com/call/join/<redacted:vk-join-token>" {
			t.Errorf("artifact:\n%s", raw)
		}
		assertNoSecrets(t, "vk artifact", raw, vkSecrets)
		assertNoSecrets(t, "vk output", r.stdout+r.stderr, vkSecrets)
	})

	t.Run("captcha without --interactive", func(t *testing.T) {
		f.SetCaptchas(1)
		defer f.SetCaptchas(0)
		dir := t.TempDir()
		r := run(t, dir, env, "probe", "resolve", "--provider", "vk")
		r.wantCode(t, 3, "probe resolve vk, captcha, not interactive")
		if !strings.Contains(r.stderr, "probe failed: vk stage vk_calls_get_anonymous_token [captcha_required]: VK asks for a captcha: needs a person") {
			t.Errorf("stderr %q", r.stderr)
		}
		a, raw := readResolveArtifact(t, filepath.Join(dir, "artifacts", "vk", "probe-artifact.json"))
		if a.Outcome.ProviderError == nil || a.Outcome.ProviderError.Code != "captcha_required" {
			t.Errorf("artifact:\n%s", raw)
		}
		assertNoSecrets(t, "captcha artifact", raw, vkSecrets)
	})

	t.Run("captcha answered by a person", func(t *testing.T) {
		f.SetCaptchas(1)
		defer f.SetCaptchas(0)
		dir := t.TempDir()
		d, in := startStdin(t, dir, env, "probe", "resolve", "--provider", "vk", "--interactive")
		answerCaptcha(t, d, in)
		if code := d.exitCode(t, 30*time.Second); code != 0 {
			t.Fatalf("exit %d\n%s", code, d.stderr)
		}
		d.stdout.wait(t, regexp.MustCompile(`^provider=vk turn_addr=127\.0\.0\.1:3478 ttl=\S+ stages=5 `), 10*time.Second)
		_, raw := readResolveArtifact(t, filepath.Join(dir, "artifacts", "vk", "probe-artifact.json"))
		assertNoSecrets(t, "captcha artifact", raw, vkSecrets)
		assertNoSecrets(t, "interactive output", d.stdout.String()+d.stderr.String(), vkSecrets)
	})

	t.Run("captcha canceled", func(t *testing.T) {
		f.SetCaptchas(1)
		defer f.SetCaptchas(0)
		d, in := startStdin(t, t.TempDir(), env, "probe", "resolve", "--provider", "vk", "--interactive")
		d.stderr.wait(t, challengeRE, 30*time.Second)
		fmt.Fprintln(in) // an empty line
		if code := d.exitCode(t, 30*time.Second); code != 3 {
			t.Fatalf("exit %d\n%s", code, d.stderr)
		}
		d.stderr.wait(t, regexp.MustCompile(`probe failed: vk stage vk_calls_get_anonymous_token \[captcha_canceled\]`), 10*time.Second)
	})

	t.Run("faults", func(t *testing.T) {
		if len(vkFaultCodes) != len(vkfake.Faults) {
			t.Fatalf("%d faults tested, the fake has %d", len(vkFaultCodes), len(vkfake.Faults))
		}
		defer f.SetFault(vkfake.NoFault)
		for fault, code := range vkFaultCodes {
			f.SetFault(fault)
			dir := t.TempDir()
			r := run(t, dir, env, "probe", "resolve", "--provider", "vk")
			r.wantCode(t, 2, "probe resolve vk "+string(fault))
			stage := vkfake.Faults[fault]
			if want := fmt.Sprintf("probe failed: vk stage %s [%s]: ", stage, code); !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr %q, want %q", fault, r.stderr, want)
			}
			a, raw := readResolveArtifact(t, filepath.Join(dir, "artifacts", "vk", "probe-artifact.json"))
			last := a.Stages[len(a.Stages)-1]
			if a.Outcome.ProviderError == nil || a.Outcome.ProviderError.Stage != stage || a.Outcome.ProviderError.Code != code ||
				last.Name != stage || last.Outcome.ErrorCode != code {
				t.Errorf("%s: artifact:\n%s", fault, raw)
			}
			assertNoSecrets(t, string(fault)+" artifact", raw, vkSecrets)
			assertNoSecrets(t, string(fault)+" output", r.stdout+r.stderr, vkSecrets)
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		gone := startVKFake(t, vkfake.Config{TURNAddr: "127.0.0.1:1"})
		gone.Close()
		r := run(t, t.TempDir(), vkEnv(t, gone, "WARREN_PROBE_RESOLVE_LINK="+vkLink), "probe", "resolve", "--provider", "vk")
		r.wantCode(t, 3, "probe resolve vk, nothing listening")
		if !strings.Contains(r.stderr, "probe failed: vk stage vk_login_anonym_token [request_failed]") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	if rej := f.Rejects(); len(rej) != 0 {
		t.Errorf("the fake refused requests: %v", rej)
	}
}

// TestVKTunnelClient: tunnel-client turn --provider vk carries datagrams
// through the pion lab and coturn with the fake's short-lived TURN REST
// credentials, re-resolving them at 80 % of their TTL; it answers a
// captcha on the terminal with --interactive; each fault of the fake
// fails the session at its stage.
func TestVKTunnelClient(t *testing.T) {
	lab := startTURNLab(t, turnlab.Config{RESTSecret: vkSecret, DisableStaticUser: true})
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), lab.EchoUDP)
	turnServers := []struct{ name, addr string }{{"pion lab", lab.TURNUDP}}
	if needCoturnIfAny(t) {
		turnServers = append(turnServers, struct{ name, addr string }{"coturn", startCoturn(t, "--use-auth-secret", "--static-auth-secret="+vkSecret)})
	}
	for _, ts := range turnServers {
		t.Run(ts.name, func(t *testing.T) {
			f := startVKFake(t, vkfake.Config{TURNAddr: ts.addr, TTL: 4 * time.Second, Captchas: 1})
			env := vkEnv(t, f, "WARREN_TUNNEL_CLIENT_TURN_PSK="+key, "WARREN_TUNNEL_CLIENT_TURN_LINK="+vkLink)
			d, in := startStdin(t, t.TempDir(), env, "tunnel-client", "turn", "--provider", "vk", "--peer", peer,
				"--listen", "127.0.0.1:0", "--interactive")
			answerCaptcha(t, d, in)
			local := d.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
			c, err := net.Dial("udp4", local)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			udpEcho(t, c, []byte("vk-before-rotation"))
			// The 4 s credentials are replaced at about 3.2 s.
			deadline := time.Now().Add(30 * time.Second)
			for f.Hits(vkfake.StageJoin) < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no re-resolution within 30s\n%s", d.stderr)
				}
				time.Sleep(50 * time.Millisecond)
			}
			for i := range 3 {
				udpEcho(t, c, []byte(fmt.Sprintf("vk-after-rotation-%d", i)))
			}
			stopDaemon(t, d)
			assertNoSecrets(t, "tunnel-client output", d.stdout.String()+d.stderr.String(), vkSecrets)
			if rej := f.Rejects(); len(rej) != 0 {
				t.Errorf("the fake refused requests: %v", rej)
			}
		})
	}

	t.Run("failures", func(t *testing.T) {
		f := startVKFake(t, vkfake.Config{TURNAddr: lab.TURNUDP})
		env := vkEnv(t, f, "WARREN_TUNNEL_CLIENT_TURN_PSK="+key, "WARREN_TUNNEL_CLIENT_TURN_LINK="+vkLink)
		args := []string{"turn", "--provider", "vk", "--peer", peer, "--listen", "127.0.0.1:0"}
		for fault, code := range vkFaultCodes {
			f.SetFault(fault)
			r := run(t, t.TempDir(), env, "tunnel-client", args...)
			r.wantCode(t, 1, "tunnel-client turn vk "+string(fault))
			want := fmt.Sprintf("client runtime failed stage=provider_resolve: vk stage %s [%s]: ", vkfake.Faults[fault], code)
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr %q, want %q", fault, r.stderr, want)
			}
			assertNoSecrets(t, string(fault)+" output", r.stdout+r.stderr, vkSecrets)
		}
		f.SetFault(vkfake.NoFault)
		f.SetCaptchas(1)
		r := run(t, t.TempDir(), env, "tunnel-client", args...)
		r.wantCode(t, 3, "tunnel-client turn vk, captcha, not interactive")
		if !strings.Contains(r.stderr, "client runtime failed stage=provider_resolve: vk stage vk_calls_get_anonymous_token [captcha_required]") {
			t.Errorf("stderr %q", r.stderr)
		}
	})
}

// needCoturnIfAny reports whether coturn is there; under
// WARREN_REQUIRE_TOOLS=1 its absence fails the test (needtool).
func needCoturnIfAny(t *testing.T) bool {
	ok := false
	t.Run("coturn present", func(t *testing.T) {
		needCoturn(t) // skips (Goexit) or fails when missing
		ok = true
	})
	return ok
}
