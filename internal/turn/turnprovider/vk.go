package turnprovider

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/warrenhq/warren/internal/redact"
)

// The vk provider resolves a VK call invite (https://vk.com/call/join/<token>)
// in four HTTP stages, as the upstream vk-turn-proxy does
// (docs/protocols/turn-overlay.md §2.6). Nothing here has reached the
// live service: the stages follow the upstream's code and fixtures and are
// tested against vkfake only.

// MethodVKStagedHTTP is the vk provider's resolution method.
const MethodVKStagedHTTP = "staged_http"

// VK stage names, as artifacts and StageError spell them.
const (
	VKStageLink    = "vk_invite_link"
	VKStageLogin   = "vk_login_anonym_token"
	VKStageToken   = "vk_calls_get_anonymous_token"
	VKStageOKLogin = "ok_anonym_login"
	VKStageJoin    = "ok_join_conversation_by_link"
)

// VK failure codes (StageError.Code, the artifact's provider_error.code).
const (
	CodeInvalidLink        = "invalid_link"
	CodeRequestFailed      = "request_failed"    // no HTTP answer (DNS, connect, timeout)
	CodeUnexpectedStatus   = "unexpected_status" // an HTTP status other than 200
	CodeDecodeResponse     = "decode_response"   // the body is not a JSON object
	CodeAPIError           = "api_error"         // VK or OK answered with an error object
	CodeMissingAccessToken = "missing_access_token"
	CodeMissingAnonToken   = "missing_anonymous_token"
	CodeMissingSessionKey  = "missing_session_key"
	CodeMissingTURNServer  = "missing_turn_server"
	CodeMissingUsername    = "missing_turn_username"
	CodeMissingCredential  = "missing_turn_credential"
	CodeMissingTURNURL     = "missing_turn_url"
	CodeInvalidTURNURL     = "invalid_turn_url"
	CodeExpired            = "expired_credentials"
	CodeCaptchaRequired    = "captcha_required" // no Solver: ErrChallengeRequired
	CodeCaptchaCanceled    = "captcha_canceled" // ErrChallengeCanceled, or the wait ended
	CodeCaptchaRejected    = "captcha_rejected" // VK kept asking after MaxVKCaptchas answers
)

// MaxVKCaptchas is how many captchas one resolution answers before it
// gives up (a person who mistyped gets another go; a loop does not).
const MaxVKCaptchas = 3

// Constants the upstream client sends (public: VK's web calls app).
const (
	vkClientID       = "6287487"
	vkClientSecret   = "QbYic1K3lEV5kTGiqlq2"
	vkAPIVersion     = "5.274"
	okApplicationKey = "CGMMEJLGDIHBABABA"
	vkUserAgent      = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:144.0) Gecko/20100101 Firefox/144.0"
	vkInvitePrefix   = "https://vk.com/call/join/"
	vkHTTPTimeout    = 20 * time.Second
	vkMaxBody        = 1 << 20
)

// StageError is a provider failure at a named stage with a stable code;
// callers map it (errors.As) to exit codes and show Stage and Code.
type StageError struct {
	Provider string
	Stage    string
	Code     string
	Err      error
}

func (e *StageError) Error() string {
	return fmt.Sprintf("%s stage %s [%s]: %v", e.Provider, e.Stage, e.Code, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// vkEndpoints are the three URLs the stages post to.
type vkEndpoints struct {
	login, token, ok string
}

var liveVKEndpoints = vkEndpoints{
	login: "https://login.vk.ru/?act=get_anonym_token",
	token: "https://api.vk.ru/method/calls.getAnonymousToken?v=" + vkAPIVersion + "&client_id=" + vkClientID,
	ok:    "https://calls.okcdn.ru/fb.do",
}

// testVKEndpoints, when set, replaces liveVKEndpoints (SetVKBaseURLForTest).
var testVKEndpoints atomic.Pointer[vkEndpoints]

// SetVKBaseURLForTest points the vk provider at a fake (vkfake's URL):
// each live URL is rebased, "https://login.vk.ru/..." becoming
// "<base>/login.vk.ru/...". For tests only: nothing in the binaries calls
// it unless they are built with the warren_testhooks tag (vk_testhook.go).
// restore undoes it.
func SetVKBaseURLForTest(base string) (restore func()) {
	base = strings.TrimRight(base, "/")
	rebase := func(u string) string { return base + "/" + strings.TrimPrefix(u, "https://") }
	e := &vkEndpoints{login: rebase(liveVKEndpoints.login), token: rebase(liveVKEndpoints.token), ok: rebase(liveVKEndpoints.ok)}
	prev := testVKEndpoints.Swap(e)
	return func() { testVKEndpoints.Store(prev) }
}

func vkEndpointsNow() vkEndpoints {
	if e := testVKEndpoints.Load(); e != nil {
		return *e
	}
	return liveVKEndpoints
}

var vkHTTP = &http.Client{Timeout: vkHTTPTimeout, Transport: http.DefaultTransport.(*http.Transport).Clone(),
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// placeholders for what the stages carry.
var (
	redactedJoinToken = redact.Named("vk-join-token")
	vkPlaceholders    = map[string]string{
		"access_token":    redact.Named("vk-access-token"),
		"token":           redact.Named("vk-anonym-token"),
		"anonymToken":     redact.Named("vk-anonym-token"),
		"session_key":     redact.Named("ok-session-key"),
		"session_data":    redact.Named("ok-session-data"),
		"username":        RedactedUsername,
		"credential":      RedactedPassword,
		"redirect_uri":    redact.Named("vk-captcha-redirect-uri"),
		"captcha_img":     redact.Named("vk-captcha-image-uri"),
		"captcha_sid":     redact.Named("vk-captcha-sid"),
		"captcha_key":     redact.Named("vk-captcha-key"),
		"captcha_ts":      redact.Named("vk-captcha-ts"),
		"captcha_attempt": redact.Named("vk-captcha-attempt"),
		"success_token":   redact.Named("vk-success-token"),
		"remixstlid":      redact.Named("vk-remixstlid"),
		"vk_join_link":    vkInvitePrefix + redactedJoinToken,
		"joinLink":        redactedJoinToken,
		"client_secret":   redact.Named("vk-client-secret"),
	}
)

type vk struct{}

func (vk) Name() string { return "vk" }

// vkRun is one resolution: its artifact and the secrets met so far.
type vkRun struct {
	art     *Artifact
	secrets *redact.Redactor
	ep      vkEndpoints
	now     time.Time
}

func (vk) Resolve(ctx context.Context, req Request) (*Resolution, error) {
	r := &vkRun{art: newArtifact("vk", MethodVKStagedHTTP, ""), secrets: redact.NewRedactor(), ep: vkEndpointsNow(), now: req.Now}
	r.art.Input.LinkRedacted = vkInvitePrefix + redactedJoinToken
	if r.now.IsZero() {
		r.now = time.Now()
	}
	join, err := parseVKLink(req.Link)
	if err != nil {
		r.art.Stages = append(r.art.Stages, Stage{Name: VKStageLink, EndpointID: "link",
			Request: StageRequest{Method: "PARSE", FormKeys: []string{}, RedactedFields: []string{}}})
		return nil, r.fail(VKStageLink, CodeInvalidLink, err)
	}
	r.secrets.Add("vk-join-token", join)

	// 1: an anonymous VK access token.
	p, err := r.stage(ctx, VKStageLogin, r.ep.login, url.Values{
		"client_id": {vkClientID}, "token_type": {"messages"}, "client_secret": {vkClientSecret},
		"version": {"1"}, "app_id": {vkClientID},
	}, "client_secret")
	if err != nil {
		return nil, err
	}
	access, ferr := stringAt(p, "data", "access_token")
	if ferr != nil {
		return nil, r.fail(VKStageLogin, CodeMissingAccessToken, ferr)
	}
	r.secrets.Add("vk-access-token", access)
	r.ok("access_token")

	// 2: an anonymous call token, through captchas when VK asks.
	anon, err := r.anonymousToken(ctx, req.Solver, join, access)
	if err != nil {
		return nil, err
	}

	// 3: an anonymous OK session.
	session := vkSessionData()
	p, err = r.stage(ctx, VKStageOKLogin, r.ep.ok, url.Values{
		"session_data": {session}, "method": {"auth.anonymLogin"}, "format": {"JSON"}, "application_key": {okApplicationKey},
	}, "session_data")
	if err != nil {
		return nil, err
	}
	if aerr := okAPIError(p); aerr != nil {
		return nil, r.fail(VKStageOKLogin, CodeAPIError, aerr)
	}
	sessionKey, ferr := stringAt(p, "session_key")
	if ferr != nil {
		return nil, r.fail(VKStageOKLogin, CodeMissingSessionKey, ferr)
	}
	r.secrets.Add("ok-session-key", sessionKey)
	r.ok("session_key")

	// 4: join the call; the answer carries the TURN server.
	p, err = r.stage(ctx, VKStageJoin, r.ep.ok, url.Values{
		"joinLink": {join}, "isVideo": {"false"}, "protocolVersion": {"5"}, "anonymToken": {anon},
		"method": {"vchat.joinConversationByLink"}, "format": {"JSON"}, "application_key": {okApplicationKey},
		"session_key": {sessionKey},
	}, "joinLink", "anonymToken", "session_key")
	if err != nil {
		return nil, err
	}
	if aerr := okAPIError(p); aerr != nil {
		return nil, r.fail(VKStageJoin, CodeAPIError, aerr)
	}
	res, code, ferr := vkTURN(p, r.now)
	if ferr != nil {
		return nil, r.fail(VKStageJoin, code, ferr)
	}
	res.Artifact = r.art
	r.art.succeed(res)
	return res, nil
}

// anonymousToken runs stage 2, answering up to MaxVKCaptchas captchas.
func (r *vkRun) anonymousToken(ctx context.Context, solver ChallengeSolver, join, access string) (string, error) {
	form := url.Values{"vk_join_link": {vkInvitePrefix + join}, "name": {"123"}, "access_token": {access}}
	redacted := []string{"vk_join_link", "access_token"}
	for attempt := 0; ; attempt++ {
		p, err := r.stage(ctx, VKStageToken, r.ep.token, form, redacted...)
		if err != nil {
			return "", err
		}
		e, _ := p["error"].(map[string]any)
		if e == nil {
			tok, ferr := stringAt(p, "response", "token")
			if ferr != nil {
				return "", r.fail(VKStageToken, CodeMissingAnonToken, ferr)
			}
			r.secrets.Add("vk-anonym-token", tok)
			r.ok("anonym_token")
			return tok, nil
		}
		code, _ := e["error_code"].(float64)
		msg, _ := e["error_msg"].(string)
		if code != 14 {
			return "", r.fail(VKStageToken, CodeAPIError, fmt.Errorf("VK API error %v: %s", code, msg))
		}
		ch := Challenge{ID: randomID(), Provider: "vk", Stage: VKStageToken, Kind: "captcha"}
		ch.URL, _ = e["redirect_uri"].(string)
		ch.ImageURL, _ = e["captcha_img"].(string)
		sid := scalarString(e["captcha_sid"])
		for _, k := range []string{"redirect_uri", "captcha_img", "captcha_sid"} {
			r.secrets.Add("vk-"+strings.ReplaceAll(k, "_", "-"), scalarString(e[k]))
		}
		if ch.URL == "" && ch.ImageURL == "" {
			return "", r.fail(VKStageToken, CodeAPIError, errors.New("VK asks for a captcha but gives neither redirect_uri nor captcha_img"))
		}
		if attempt >= MaxVKCaptchas {
			return "", r.fail(VKStageToken, CodeCaptchaRejected, fmt.Errorf("VK still asks for a captcha after %d answers", attempt))
		}
		if solver == nil {
			return "", r.fail(VKStageToken, CodeCaptchaRequired, fmt.Errorf("VK asks for a captcha: %w", ErrChallengeRequired))
		}
		r.outcome(StageOutcome{Kind: "challenge", ErrorCode: CodeCaptchaRequired})
		ans, serr := solver.Solve(ctx, ch)
		if serr == nil && strings.TrimSpace(ans.Key) == "" {
			serr = fmt.Errorf("empty answer: %w", ErrChallengeCanceled)
		}
		if serr != nil {
			if !errors.Is(serr, ErrChallengeCanceled) {
				// The wait ended (ctx) or the solver failed: canceled all the same.
				serr = fmt.Errorf("%w: %w", ErrChallengeCanceled, serr)
			}
			return "", r.fail(VKStageToken, CodeCaptchaCanceled, fmt.Errorf("captcha %s: %w", ch.ID, serr))
		}
		key := strings.TrimSpace(ans.Key)
		r.secrets.Add("vk-captcha-key", key)
		ts := scalarString(e["captcha_ts"])
		if ts == "" {
			ts = strconv.FormatInt(time.Now().Unix(), 10)
		}
		// The continuation the upstream's fixture shows: the blocked
		// request again, plus the captcha fields. The answer goes both
		// as captcha_key (a typed image captcha) and success_token (what
		// VK's "not a robot" page hands the browser).
		form.Set("captcha_sid", sid)
		form.Set("captcha_key", key)
		form.Set("success_token", key)
		form.Set("captcha_ts", ts)
		form.Set("captcha_attempt", strconv.Itoa(attempt+1))
		form.Set("is_sound_captcha", "0")
		redacted = []string{"vk_join_link", "access_token", "captcha_sid", "captcha_key", "success_token", "captcha_ts", "captcha_attempt"}
	}
}

// stage posts form to endpoint and records it. A transport, status or
// decoding failure fails the resolution.
func (r *vkRun) stage(ctx context.Context, name, endpoint string, form url.Values, redacted ...string) (map[string]any, error) {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if redacted == nil {
		redacted = []string{}
	}
	r.art.Stages = append(r.art.Stages, Stage{Name: name, EndpointID: name,
		Request: StageRequest{Method: http.MethodPost, FormKeys: keys, RedactedFields: redacted}})
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, r.fail(name, CodeRequestFailed, err)
	}
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hreq.Header.Set("User-Agent", vkUserAgent)
	resp, err := vkHTTP.Do(hreq)
	if err != nil {
		return nil, r.fail(name, CodeRequestFailed, fmt.Errorf("POST %s: %w", endpointHost(endpoint), unwrapURLError(err)))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, vkMaxBody))
	last := &r.art.Stages[len(r.art.Stages)-1]
	last.Response.StatusCode = resp.StatusCode
	if err != nil {
		return nil, r.fail(name, CodeRequestFailed, fmt.Errorf("read %s: %w", endpointHost(endpoint), err))
	}
	if resp.StatusCode != http.StatusOK {
		// The body is not recorded or shown: an error page may echo the request.
		last.Response.Body = redact.Named("body")
		return nil, r.fail(name, CodeUnexpectedStatus, fmt.Errorf("%s answered HTTP %s", endpointHost(endpoint), resp.Status))
	}
	var p map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil || p == nil {
		last.Response.Body = redact.Named("body")
		return nil, r.fail(name, CodeDecodeResponse, fmt.Errorf("%s answered something other than a JSON object", endpointHost(endpoint)))
	}
	// Numbers back to float64 for the field checks; json.Number was only
	// to keep big ids intact in the recorded body.
	last.Response.Body = r.sanitize(p)
	var plain map[string]any
	json.Unmarshal(body, &plain)
	return plain, nil
}

// sanitize is the recorded response body: every known secret field
// replaced by its placeholder, then every secret met so far by value.
func (r *vkRun) sanitize(p map[string]any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the placeholders' angle brackets
	if err := enc.Encode(redactFields(p)); err != nil {
		return redact.Named("body")
	}
	return r.secrets.Redact(strings.TrimSuffix(buf.String(), "\n"))
}

func redactFields(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			if ph, ok := vkPlaceholders[k]; ok {
				out[k] = ph
				continue
			}
			out[k] = redactFields(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = redactFields(x)
		}
		return out
	}
	return v
}

func (r *vkRun) outcome(o StageOutcome) {
	r.art.Stages[len(r.art.Stages)-1].Outcome = o
}

func (r *vkRun) ok(extracted ...string) { r.outcome(StageOutcome{Kind: "ok", Extracted: extracted}) }

// fail records the failure and returns it as a *ResolveError wrapping a
// *StageError. Messages are redacted: they may quote the service.
func (r *vkRun) fail(stage, code string, err error) error {
	if code == CodeAPIError {
		// The service's own words: hide anything of this run's secrets it echoes.
		err = errors.New(r.secrets.Redact(redact.String(err.Error())))
	}
	err = &StageError{Provider: "vk", Stage: stage, Code: code, Err: err}
	if n := len(r.art.Stages); n > 0 && r.art.Stages[n-1].Name == stage {
		r.art.Stages[n-1].Outcome = StageOutcome{Kind: "error", ErrorCode: code}
	}
	r.art.Outcome = Outcome{ResultKind: "provider_error", ProviderError: &ProviderError{Stage: stage, Code: code}}
	return &ResolveError{Artifact: r.art, Err: err}
}

// parseVKLink returns the join token of https://vk.com/call/join/<token>
// (also without the scheme, or on www.vk.com). It never echoes the link.
func parseVKLink(link string) (string, error) {
	s := strings.TrimSpace(link)
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "vk.com/") || strings.HasPrefix(lower, "www.vk.com/") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", errors.New("invalid vk link: expected https://vk.com/call/join/<token>")
	}
	if h := strings.ToLower(u.Hostname()); h != "vk.com" && h != "www.vk.com" || u.Port() != "" {
		return "", fmt.Errorf("invalid vk link: host must be vk.com, got %q", u.Host)
	}
	if !strings.EqualFold(u.Scheme, "https") && !strings.EqualFold(u.Scheme, "http") {
		return "", errors.New("invalid vk link: scheme must be https")
	}
	if u.User != nil {
		return "", errors.New("invalid vk link: user info is not supported")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "call" || parts[1] != "join" || parts[2] == "" {
		return "", errors.New("invalid vk link: path must be /call/join/<token>")
	}
	tok := parts[2]
	for _, c := range tok {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return "", errors.New("invalid vk link: the join token may hold only letters, digits and -_.~")
		}
	}
	return tok, nil
}

// vkTURN reads turn_server from the join answer: the first URL's
// host:port, and the TTL when the username is a TURN REST one
// ("<unix expiry>:<name>"); otherwise the credentials are taken not to
// expire (TTL 0).
func vkTURN(p map[string]any, now time.Time) (*Resolution, string, error) {
	ts, ok := p["turn_server"].(map[string]any)
	if !ok {
		return nil, CodeMissingTURNServer, errors.New("turn_server is missing or not an object")
	}
	user, _ := ts["username"].(string)
	if strings.TrimSpace(user) == "" {
		return nil, CodeMissingUsername, errors.New("turn_server.username is required")
	}
	pw, _ := ts["credential"].(string)
	if pw == "" {
		return nil, CodeMissingCredential, errors.New("turn_server.credential is required")
	}
	urls, _ := ts["urls"].([]any)
	if len(urls) == 0 {
		return nil, CodeMissingTURNURL, errors.New("turn_server.urls[0] is required")
	}
	first, _ := urls[0].(string)
	addr, err := turnURLAddress(first)
	if err != nil {
		return nil, CodeInvalidTURNURL, err
	}
	res := &Resolution{Provider: "vk", Method: MethodVKStagedHTTP, Address: addr, Username: user, Password: pw, ResolvedAt: now}
	if head, _, ok := strings.Cut(user, ":"); ok {
		if exp, err := strconv.ParseInt(head, 10, 64); err == nil && exp > 0 {
			// Whole seconds: the expiry has no finer grain.
			left := time.Unix(exp, 0).Sub(now).Truncate(time.Second)
			if left <= 0 {
				return nil, CodeExpired, fmt.Errorf("turn_server.username expired %s ago", -left)
			}
			res.TTL = left
		}
	}
	return res, "", nil
}

// turnURLAddress is host:port of a turn: or turns: URL (RFC 7065),
// without its query.
func turnURLAddress(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	rest, ok := strings.CutPrefix(s, "turn:")
	if !ok {
		rest, ok = strings.CutPrefix(s, "turns:")
	}
	if !ok {
		return "", errors.New("turn_server.urls[0] must be a turn: or turns: URL")
	}
	rest, _, _ = strings.Cut(rest, "?")
	host, port, err := net.SplitHostPort(rest)
	if err != nil || host == "" {
		return "", errors.New("turn_server.urls[0] must name host:port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", errors.New("turn_server.urls[0] port must be 1-65535")
	}
	return net.JoinHostPort(host, port), nil
}

// stringAt walks objects down path to a non-empty string.
func stringAt(p map[string]any, path ...string) (string, error) {
	cur := p
	for i, k := range path {
		name := strings.Join(path[:i+1], ".")
		v, ok := cur[k]
		if !ok {
			return "", fmt.Errorf("%s is required", name)
		}
		if i == len(path)-1 {
			s, ok := v.(string)
			if !ok || strings.TrimSpace(s) == "" {
				return "", fmt.Errorf("%s must be a non-empty string", name)
			}
			return s, nil
		}
		if cur, ok = v.(map[string]any); !ok {
			return "", fmt.Errorf("%s must be an object", name)
		}
	}
	return "", errors.New("empty path")
}

// okAPIError is the OK API's error answer ({"error_code":N,"error_msg":...}).
func okAPIError(p map[string]any) error {
	code, ok := p["error_code"]
	if !ok {
		return nil
	}
	msg, _ := p["error_msg"].(string)
	return fmt.Errorf("OK API error %v: %s", code, msg)
}

func scalarString(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return ""
}

// vkSessionData is auth.anonymLogin's session_data: a fresh device id (a
// random version-4 UUID) per resolution, as the web client sends.
func vkSessionData() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
	sd, _ := json.Marshal(map[string]any{"version": 2, "device_id": id, "client_version": 1.1, "client_type": "SDK_JS"})
	return string(sd)
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func endpointHost(endpoint string) string {
	if u, err := url.Parse(endpoint); err == nil {
		return u.Host
	}
	return "endpoint"
}

// unwrapURLError drops *url.Error's "Post <url>:" prefix (the caller
// names the host).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
