package turnprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnprovider/vkfake"
)

const testJoin = "Abc-123_xyz"
const testLink = "https://vk.com/call/join/" + testJoin

// startFake runs a vkfake pointed at a TURN address and routes the
// provider to it for the test.
func startFake(t *testing.T, cfg vkfake.Config) *vkfake.Server {
	t.Helper()
	if cfg.TURNAddr == "" {
		cfg.TURNAddr = "127.0.0.1:3478"
	}
	if cfg.RESTSecret == "" && cfg.Username == "" {
		cfg.Username, cfg.Credential = "fake-turn-user", "fake-turn-pass"
	}
	if cfg.JoinToken == "" {
		cfg.JoinToken = testJoin
	}
	f, err := vkfake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	t.Cleanup(SetVKBaseURLForTest(f.URL()))
	return f
}

// pageSolver answers like a person: it opens the challenge URL and types
// back what the page shows. wrong answers that many times wrongly first.
type pageSolver struct {
	mu     sync.Mutex
	seen   []Challenge
	wrong  int
	cancel bool
}

func (s *pageSolver) Solve(ctx context.Context, c Challenge) (ChallengeAnswer, error) {
	s.mu.Lock()
	s.seen = append(s.seen, c)
	wrong := len(s.seen) <= s.wrong
	s.mu.Unlock()
	if s.cancel {
		return ChallengeAnswer{}, ErrChallengeCanceled
	}
	if wrong {
		return ChallengeAnswer{Key: "not-it"}, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ChallengeAnswer{}, err
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return ChallengeAnswer{Key: vkfake.CaptchaAnswerFromPage(string(page))}, nil
}

// blockingSolver waits for the caller to give up.
type blockingSolver struct{}

func (blockingSolver) Solve(ctx context.Context, _ Challenge) (ChallengeAnswer, error) {
	<-ctx.Done()
	return ChallengeAnswer{}, ctx.Err()
}

func artifactJSON(t *testing.T, err error, res *Resolution) string {
	t.Helper()
	var a *Artifact
	var re *ResolveError
	switch {
	case res != nil:
		a = res.Artifact
	case errors.As(err, &re):
		a = re.Artifact
	default:
		t.Fatalf("no artifact: %v", err)
	}
	b, jerr := a.JSON()
	if jerr != nil {
		t.Fatal(jerr)
	}
	s := string(b)
	for _, secret := range []string{testJoin, "vkfake-access-", "vkfake-anonym-", "vkfake-session-", "vkfake-ok-",
		"fake-turn-user", "fake-turn-pass", vkClientSecret, "device_id", "/captcha/"} {
		if strings.Contains(s, secret) {
			t.Fatalf("artifact holds %q:\n%s", secret, s)
		}
	}
	return s
}

func TestVKResolves(t *testing.T) {
	f := startFake(t, vkfake.Config{TURNAddr: "127.0.0.1:3478"})
	res, err := Resolve(context.Background(), "vk", Request{Link: testLink})
	if err != nil {
		t.Fatal(err)
	}
	if res.Address != "127.0.0.1:3478" || res.Username != "fake-turn-user" || res.Password != "fake-turn-pass" || res.TTL != 0 || res.Method != MethodVKStagedHTTP {
		t.Fatalf("resolution %+v", res)
	}
	s := artifactJSON(t, nil, res)
	var names []string
	for _, st := range res.Artifact.Stages {
		names = append(names, st.Name+":"+st.Outcome.Kind)
		if st.Response.StatusCode != 200 || st.Response.Body == "" {
			t.Errorf("stage %s response %+v", st.Name, st.Response)
		}
	}
	if got := strings.Join(names, ","); got != "vk_login_anonym_token:ok,vk_calls_get_anonymous_token:ok,ok_anonym_login:ok,ok_join_conversation_by_link:ok" {
		t.Fatalf("stages %s", got)
	}
	for _, want := range []string{`"result_kind": "resolved"`, `"link_redacted": "https://vk.com/call/join/<redacted:vk-join-token>"`,
		`<redacted:vk-access-token>`, `<redacted:ok-session-key>`, RedactedUsername, `"address": "127.0.0.1:3478"`, `"client_secret"`} {
		if !strings.Contains(s, want) {
			t.Errorf("artifact lacks %s:\n%s", want, s)
		}
	}
	if r := f.Rejects(); len(r) != 0 {
		t.Fatalf("the fake refused requests: %v", r)
	}
	// Other spellings of the invite.
	for _, l := range []string{"vk.com/call/join/" + testJoin, "https://www.vk.com/call/join/" + testJoin + "/"} {
		if _, err := Resolve(context.Background(), "vk", Request{Link: l}); err != nil {
			t.Errorf("%s: %v", l, err)
		}
	}
}

func TestVKTTLFromRESTUsername(t *testing.T) {
	startFake(t, vkfake.Config{RESTSecret: "sec", TTL: 10 * time.Minute})
	now := time.Now()
	res, err := Resolve(context.Background(), "vk", Request{Link: testLink, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if res.TTL < 9*time.Minute || res.TTL > 11*time.Minute || res.Stale(now.Add(7*time.Minute)) || !res.Stale(now.Add(9*time.Minute)) {
		t.Fatalf("ttl %v refresh %v", res.TTL, res.RefreshAt())
	}
	if !strings.HasSuffix(res.Username, ":vkfake-1") {
		t.Fatalf("username %q", res.Username)
	}
	b, _ := res.Artifact.JSON()
	if strings.Contains(string(b), res.Username) || strings.Contains(string(b), res.Password) {
		t.Fatalf("artifact leaks the credentials:\n%s", b)
	}
}

// TestVKFaults: every fault the fake can produce fails at its stage with
// a stable code, the artifact ending there.
func TestVKFaults(t *testing.T) {
	codes := map[vkfake.Fault]string{
		vkfake.LoginHTTP500: CodeUnexpectedStatus, vkfake.LoginNotJSON: CodeDecodeResponse, vkfake.LoginMissingAccessToken: CodeMissingAccessToken,
		vkfake.TokenAPIError: CodeAPIError, vkfake.TokenMissingToken: CodeMissingAnonToken,
		vkfake.OKLoginAPIError: CodeAPIError, vkfake.OKLoginMissingSessionKey: CodeMissingSessionKey,
		vkfake.JoinAPIError: CodeAPIError, vkfake.JoinMissingTURNServer: CodeMissingTURNServer, vkfake.JoinMissingUsername: CodeMissingUsername,
		vkfake.JoinMissingCredential: CodeMissingCredential, vkfake.JoinMissingURL: CodeMissingTURNURL, vkfake.JoinInvalidURL: CodeInvalidTURNURL,
		vkfake.JoinExpired: CodeExpired,
	}
	if len(codes) != len(vkfake.Faults) {
		t.Fatalf("%d faults tested, the fake has %d", len(codes), len(vkfake.Faults))
	}
	f := startFake(t, vkfake.Config{RESTSecret: "sec"})
	for fault, code := range codes {
		t.Run(string(fault), func(t *testing.T) {
			f.SetFault(fault)
			_, err := Resolve(context.Background(), "vk", Request{Link: testLink})
			var se *StageError
			if !errors.As(err, &se) || se.Stage != vkfake.Faults[fault] || se.Code != code || se.Provider != "vk" {
				t.Fatalf("got %v, want stage %s code %s", err, vkfake.Faults[fault], code)
			}
			if want := fmt.Sprintf("vk stage %s [%s]: ", se.Stage, code); !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("message %q", err)
			}
			s := artifactJSON(t, err, nil)
			var a Artifact
			json.Unmarshal([]byte(s), &a)
			last := a.Stages[len(a.Stages)-1]
			if a.Outcome.ProviderError == nil || a.Outcome.ProviderError.Stage != se.Stage || a.Outcome.ProviderError.Code != code ||
				last.Name != se.Stage || last.Outcome.ErrorCode != code {
				t.Fatalf("artifact outcome:\n%s", s)
			}
		})
	}
	if r := f.Rejects(); len(r) != 0 {
		t.Fatalf("the fake refused requests: %v", r)
	}
}

func TestVKCaptcha(t *testing.T) {
	ctx := context.Background()
	f := startFake(t, vkfake.Config{Captchas: 1})

	// No solver: the challenge cannot be answered.
	_, err := Resolve(ctx, "vk", Request{Link: testLink})
	var se *StageError
	if !errors.Is(err, ErrChallengeRequired) || !errors.As(err, &se) || se.Stage != VKStageToken || se.Code != CodeCaptchaRequired {
		t.Fatalf("no solver: %v", err)
	}
	artifactJSON(t, err, nil)

	// Canceled.
	_, err = Resolve(ctx, "vk", Request{Link: testLink, Solver: &pageSolver{cancel: true}})
	if !errors.Is(err, ErrChallengeCanceled) || !errors.As(err, &se) || se.Code != CodeCaptchaCanceled {
		t.Fatalf("canceled: %v", err)
	}

	// Nobody answers before the caller gives up.
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	_, err = Resolve(tctx, "vk", Request{Link: testLink, Solver: blockingSolver{}})
	if !errors.Is(err, ErrChallengeCanceled) || !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &se) || se.Code != CodeCaptchaCanceled {
		t.Fatalf("timed out: %v", err)
	}

	// A person who mistypes once, then answers.
	s := &pageSolver{wrong: 1}
	res, err := Resolve(ctx, "vk", Request{Link: testLink, Solver: s})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.seen) != 2 || f.Solved() != 1 {
		t.Fatalf("challenges %d solved %d", len(s.seen), f.Solved())
	}
	c := s.seen[0]
	if c.Provider != "vk" || c.Stage != VKStageToken || c.Kind != "captcha" || len(c.ID) != 24 || !strings.HasPrefix(c.URL, f.URL()+vkfake.PathCaptcha) || c.ImageURL == "" || s.seen[1].ID == c.ID {
		t.Fatalf("challenge %+v", c)
	}
	a := artifactJSON(t, nil, res)
	var kinds []string
	for _, st := range res.Artifact.Stages {
		kinds = append(kinds, st.Outcome.Kind)
	}
	if got := strings.Join(kinds, ","); got != "ok,challenge,challenge,ok,ok,ok" {
		t.Fatalf("stage outcomes %s:\n%s", got, a)
	}
	if !strings.Contains(a, `"success_token"`) || !strings.Contains(a, "<redacted:vk-captcha-redirect-uri>") {
		t.Fatalf("artifact:\n%s", a)
	}

	// Always wrong: VK keeps asking, the provider gives up.
	f.SetCaptchas(1)
	s = &pageSolver{wrong: 100}
	_, err = Resolve(ctx, "vk", Request{Link: testLink, Solver: s})
	if !errors.As(err, &se) || se.Code != CodeCaptchaRejected || len(s.seen) != MaxVKCaptchas {
		t.Fatalf("rejected: %v after %d", err, len(s.seen))
	}
	if r := f.Rejects(); len(r) != 0 {
		t.Fatalf("the fake refused requests: %v", r)
	}
}

func TestVKNoService(t *testing.T) {
	// A closed port: the first stage cannot be reached.
	f, err := vkfake.New(vkfake.Config{TURNAddr: "127.0.0.1:1", Username: "u", Credential: "p"})
	if err != nil {
		t.Fatal(err)
	}
	url := f.URL()
	f.Close()
	defer SetVKBaseURLForTest(url)()
	_, err = Resolve(context.Background(), "vk", Request{Link: testLink})
	var se *StageError
	if !errors.As(err, &se) || se.Stage != VKStageLogin || se.Code != CodeRequestFailed {
		t.Fatalf("got %v", err)
	}
	// An unknown call: VK's error at stage 2.
	startFake(t, vkfake.Config{JoinToken: "other"})
	_, err = Resolve(context.Background(), "vk", Request{Link: testLink})
	if !errors.As(err, &se) || se.Stage != VKStageToken || se.Code != CodeAPIError || !strings.Contains(err.Error(), "VK API error 104") {
		t.Fatalf("unknown call: %v", err)
	}
}

func TestVKLinks(t *testing.T) {
	// Bad links fail before any request (no fake: nothing may be sent).
	for link, want := range map[string]string{
		"x":                                 "invalid vk link: expected https://vk.com/call/join/<token>",
		"":                                  "invalid vk link: expected https://vk.com/call/join/<token>",
		"https://evil.example/call/join/a":  `host must be vk.com, got "evil.example"`,
		"https://vk.com/call/a":             "path must be /call/join/<token>",
		"https://vk.com/call/join/":         "path must be /call/join/<token>",
		"https://vk.com/call/join/a%20b":    "may hold only",
		"https://u:p@vk.com/call/join/abc":  "user info",
		"ftp://vk.com/call/join/abc":        "scheme must be https",
		"https://vk.com:8443/call/join/abc": "host must be vk.com",
	} {
		_, err := Resolve(context.Background(), "vk", Request{Link: link})
		var se *StageError
		if !errors.As(err, &se) || se.Stage != VKStageLink || se.Code != CodeInvalidLink || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", link, err, want)
		}
	}
}

func TestPromptSolver(t *testing.T) {
	pr, pw := io.Pipe()
	var out strings.Builder
	s := &PromptSolver{In: pr, Out: &out}
	go func() { fmt.Fprintln(pw, "  the-answer "); fmt.Fprintln(pw, ""); pw.Close() }()
	c := Challenge{ID: "id1", Provider: "vk", Stage: VKStageToken, Kind: "captcha", URL: "http://127.0.0.1:1/captcha/1"}
	a, err := s.Solve(context.Background(), c)
	if err != nil || a.Key != "the-answer" || !strings.Contains(out.String(), "challenge: open http://127.0.0.1:1/captcha/1 in a browser") {
		t.Fatalf("%v %v\n%s", a, err, out.String())
	}
	if _, err := s.Solve(context.Background(), c); !errors.Is(err, ErrChallengeCanceled) {
		t.Fatalf("empty line: %v", err)
	}
	if _, err := s.Solve(context.Background(), c); !errors.Is(err, ErrChallengeCanceled) {
		t.Fatalf("EOF: %v", err)
	}
}

func FuzzVKAnswer(f *testing.F) {
	for _, s := range []string{`{"turn_server":{"username":"1:u","credential":"p","urls":["turn:h:1?transport=udp"]}}`,
		`{"error":{"error_code":14,"redirect_uri":"x","captcha_sid":123}}`, `{"data":{"access_token":"a"}}`,
		`{"error_code":5,"error_msg":"m"}`, `{"turn_server":{"urls":[1]}}`, `[]`, `null`} {
		f.Add([]byte(s), "https://vk.com/call/join/abc")
	}
	f.Fuzz(func(t *testing.T, body []byte, link string) {
		parseVKLink(link)
		var p map[string]any
		if json.Unmarshal(body, &p) != nil {
			return
		}
		r := &vkRun{art: newArtifact("vk", MethodVKStagedHTTP, "")}
		r.secrets = nil
		_ = r.sanitize(p)
		stringAt(p, "data", "access_token")
		okAPIError(p)
		res, code, err := vkTURN(p, time.Unix(100, 0))
		if err == nil && (res.Address == "" || res.Username == "" || res.Password == "") || err != nil && code == "" {
			t.Fatalf("vkTURN %+v %q %v", res, code, err)
		}
	})
}
