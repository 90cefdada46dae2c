package vkfake

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stage names, as the provider's artifacts spell them.
const (
	StageLogin = "vk_login_anonym_token"
	StageToken = "vk_calls_get_anonymous_token"
	StageOK    = "ok_anonym_login"
	StageJoin  = "ok_join_conversation_by_link"
)

// Paths the fake serves (the real URLs without "https://").
const (
	PathLogin = "/login.vk.ru/"
	PathToken = "/api.vk.ru/method/calls.getAnonymousToken"
	PathOK    = "/calls.okcdn.ru/fb.do"
	// PathCaptcha + <sid> is the captcha page a person opens.
	PathCaptcha = "/captcha/"
)

// Constants the real clients send and the fake insists on.
const (
	ClientID       = "6287487"
	ApplicationKey = "CGMMEJLGDIHBABABA"
	APIVersion     = "5.274"
)

// Fault makes one stage answer badly. Each names its stage.
type Fault string

// Faults, one per way a stage can fail.
const (
	NoFault Fault = ""

	LoginHTTP500            Fault = "login_http_500"             // stage 1 answers 500
	LoginNotJSON            Fault = "login_not_json"             // stage 1 answers 200 with HTML
	LoginMissingAccessToken Fault = "login_missing_access_token" // {"data":{}}

	TokenAPIError     Fault = "token_api_error"     // {"error":{"error_code":9,...}}
	TokenMissingToken Fault = "token_missing_token" // {"response":{}}

	OKLoginAPIError          Fault = "ok_login_api_error"           // {"error_code":...} at the top
	OKLoginMissingSessionKey Fault = "ok_login_missing_session_key" // {}

	JoinAPIError          Fault = "join_api_error"           // {"error_code":...}
	JoinMissingTURNServer Fault = "join_missing_turn_server" // {} without turn_server
	JoinMissingUsername   Fault = "join_missing_username"
	JoinMissingCredential Fault = "join_missing_credential"
	JoinMissingURL        Fault = "join_missing_url" // "urls": []
	JoinInvalidURL        Fault = "join_invalid_url" // "urls": ["stun:..."]
	JoinExpired           Fault = "join_expired"     // REST username whose expiry has passed
)

// Faults lists every fault with the stage it hits.
var Faults = map[Fault]string{
	LoginHTTP500: StageLogin, LoginNotJSON: StageLogin, LoginMissingAccessToken: StageLogin,
	TokenAPIError: StageToken, TokenMissingToken: StageToken,
	OKLoginAPIError: StageOK, OKLoginMissingSessionKey: StageOK,
	JoinAPIError: StageJoin, JoinMissingTURNServer: StageJoin, JoinMissingUsername: StageJoin,
	JoinMissingCredential: StageJoin, JoinMissingURL: StageJoin, JoinInvalidURL: StageJoin, JoinExpired: StageJoin,
}

// Config configures a fake.
type Config struct {
	// TURNAddr is the host:port stage 4 points at (required), as
	// turn:<TURNAddr>?transport=<Transport> (Transport defaults to udp).
	TURNAddr  string
	Transport string
	// Username and Credential are static TURN credentials to hand out,
	// or, with RESTSecret set, fresh TURN REST credentials
	// ("<expiry>:vkfake-<n>", HMAC-SHA1) valid for TTL (default 1h) are
	// minted on every join, as coturn's use-auth-secret accepts them.
	Username, Credential string
	RESTSecret           string
	TTL                  time.Duration
	// JoinToken, when set, is the only call token the fake knows; others
	// get VK's "call not found" error at stage 2 and OK's at stage 4.
	JoinToken string
	// Captchas is how many times stage 2 asks for a captcha before it
	// hands out a token (each correct answer uses one up).
	Captchas int
	// Fault makes one stage fail (NoFault: none).
	Fault Fault
}

// Server is a running fake.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	url  string
	done chan struct{}

	mu       sync.Mutex
	cfg      Config
	hits     map[string]int
	issued   map[string]bool   // access tokens, anonymous tokens, session keys
	captchas map[string]string // sid -> answer, open challenges
	solved   int
	minted   int
	rejects  []string
}

// New starts a fake on 127.0.0.1. Close stops it.
func New(cfg Config) (*Server, error) {
	if cfg.TURNAddr == "" {
		return nil, errors.New("vkfake: TURNAddr is required")
	}
	if cfg.RESTSecret == "" && (cfg.Username == "" || cfg.Credential == "") {
		return nil, errors.New("vkfake: set Username and Credential, or RESTSecret")
	}
	if _, ok := Faults[cfg.Fault]; !ok && cfg.Fault != NoFault {
		return nil, fmt.Errorf("vkfake: unknown fault %q", cfg.Fault)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, url: "http://" + ln.Addr().String(), done: make(chan struct{}), cfg: cfg,
		hits: map[string]int{}, issued: map[string]bool{}, captchas: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc(PathLogin, s.login)
	mux.HandleFunc(PathToken, s.token)
	mux.HandleFunc(PathOK, s.ok)
	mux.HandleFunc(PathCaptcha, s.captchaPage)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { defer close(s.done); s.srv.Serve(ln) }()
	return s, nil
}

// URL is the base URL (http://127.0.0.1:port), what the provider's test
// hook takes.
func (s *Server) URL() string { return s.url }

// Close stops the server and waits for it.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// SetFault changes the fault for the requests to come.
func (s *Server) SetFault(f Fault) {
	s.mu.Lock()
	s.cfg.Fault = f
	s.mu.Unlock()
}

// SetCaptchas changes how many captchas stage 2 still asks for.
func (s *Server) SetCaptchas(n int) {
	s.mu.Lock()
	s.cfg.Captchas = n
	s.mu.Unlock()
}

// Hits is how many requests reached stage (one of the Stage constants).
func (s *Server) Hits(stage string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[stage]
}

// Solved is how many captchas were answered correctly.
func (s *Server) Solved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.solved
}

// Rejects lists why requests were refused as malformed (a wrong constant,
// a token the fake never issued, a missing form key): a test that expects
// none checks it is empty.
func (s *Server) Rejects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejects...)
}

// Answer returns the answer to an open captcha sid, as its page shows it
// to a person ("" if the sid is unknown).
func (s *Server) Answer(sid string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.captchas[sid]
}

// CaptchaAnswerFromPage extracts the answer from the captcha page's HTML,
// what a test does in place of a person reading it.
func CaptchaAnswerFromPage(page string) string {
	const start, end = `<code id="answer">`, `</code>`
	i := strings.Index(page, start)
	if i < 0 {
		return ""
	}
	rest := page[i+len(start):]
	j := strings.Index(rest, end)
	if j < 0 {
		return ""
	}
	return html.UnescapeString(rest[:j])
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(v)
}

// begin counts a hit and parses the form; it answers (and returns false)
// when the request is not a form POST.
func (s *Server) begin(w http.ResponseWriter, r *http.Request, stage string) (Config, bool) {
	s.mu.Lock()
	s.hits[stage]++
	cfg := s.cfg
	s.mu.Unlock()
	if r.Method != http.MethodPost {
		s.reject(stage, "method "+r.Method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return cfg, false
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		s.reject(stage, "content type "+ct)
		http.Error(w, "bad content type", http.StatusBadRequest)
		return cfg, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.reject(stage, "form: "+err.Error())
		http.Error(w, "bad form", http.StatusBadRequest)
		return cfg, false
	}
	return cfg, true
}

func (s *Server) reject(stage, why string) {
	s.mu.Lock()
	s.rejects = append(s.rejects, stage+": "+why)
	s.mu.Unlock()
}

// want checks that form has key=value ("" value: present, non-empty).
func (s *Server) want(stage string, r *http.Request, pairs ...string) bool {
	ok := true
	for i := 0; i < len(pairs); i += 2 {
		k, v := pairs[i], pairs[i+1]
		got := r.PostForm.Get(k)
		if got == "" || (v != "" && got != v) {
			s.reject(stage, fmt.Sprintf("form %s=%q", k, got))
			ok = false
		}
	}
	return ok
}

func (s *Server) issue(prefix string) string {
	tok := prefix + randHex(12)
	s.mu.Lock()
	s.issued[tok] = true
	s.mu.Unlock()
	return tok
}

func (s *Server) known(tok string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[tok]
}

// vkError is the VK API's error shape.
func vkError(code int, msg string) map[string]any {
	return map[string]any{"error": map[string]any{"error_code": code, "error_msg": msg, "request_params": []any{}}}
}

// okError is the OK API's (fb.do) error shape.
func okError(code int, msg string) map[string]any {
	return map[string]any{"error_code": code, "error_msg": msg, "error_data": nil}
}

// login is stage 1: POST login.vk.ru/?act=get_anonym_token.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.begin(w, r, StageLogin)
	if !ok {
		return
	}
	if r.URL.Query().Get("act") != "get_anonym_token" ||
		!s.want(StageLogin, r, "client_id", ClientID, "token_type", "messages", "client_secret", "", "version", "1", "app_id", ClientID) {
		writeJSON(w, map[string]any{"type": "error", "error": "invalid_request"})
		return
	}
	switch cfg.Fault {
	case LoginHTTP500:
		http.Error(w, "internal server error", http.StatusInternalServerError)
	case LoginNotJSON:
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<html><body>maintenance</body></html>")
	case LoginMissingAccessToken:
		writeJSON(w, map[string]any{"type": "okay", "data": map[string]any{"expires": 0}})
	default:
		writeJSON(w, map[string]any{"type": "okay", "data": map[string]any{
			"access_token": s.issue("vkfake-access-"), "expires": time.Now().Add(24 * time.Hour).Unix()}})
	}
}

// token is stage 2: POST api.vk.ru/method/calls.getAnonymousToken.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.begin(w, r, StageToken)
	if !ok {
		return
	}
	q := r.URL.Query()
	if q.Get("v") != APIVersion || q.Get("client_id") != ClientID || !s.want(StageToken, r, "vk_join_link", "", "name", "", "access_token", "") {
		writeJSON(w, vkError(100, "One of the parameters specified was missing or invalid"))
		return
	}
	if !s.known(r.PostForm.Get("access_token")) {
		s.reject(StageToken, "unknown access_token")
		writeJSON(w, vkError(5, "User authorization failed: invalid access_token"))
		return
	}
	link := r.PostForm.Get("vk_join_link")
	tok, found := strings.CutPrefix(link, "https://vk.com/call/join/")
	if !found || tok == "" || (cfg.JoinToken != "" && tok != cfg.JoinToken) {
		writeJSON(w, vkError(104, "Not found: call"))
		return
	}
	// A captcha continuation carries the sid it answers and the answer
	// (success_token from the captcha page, or captcha_key).
	if sid := r.PostForm.Get("captcha_sid"); sid != "" {
		s.mu.Lock()
		want, open := s.captchas[sid]
		delete(s.captchas, sid)
		answer := r.PostForm.Get("success_token")
		if answer == "" {
			answer = r.PostForm.Get("captcha_key")
		}
		right := open && answer == want
		if right {
			s.solved++
			if s.cfg.Captchas > 0 {
				s.cfg.Captchas--
			}
			cfg.Captchas = s.cfg.Captchas
		}
		s.mu.Unlock()
		if !right {
			cfg.Captchas = max(cfg.Captchas, 1) // a wrong answer gets a new captcha
		}
	}
	if cfg.Captchas > 0 {
		sid := strconv.FormatInt(time.Now().UnixNano()%1e12, 10) + randHex(2)
		s.mu.Lock()
		s.captchas[sid] = "vkfake-ok-" + randHex(6)
		s.mu.Unlock()
		writeJSON(w, map[string]any{"error": map[string]any{
			"error_code": 14, "error_msg": "Captcha needed",
			"captcha_sid": sid, "captcha_img": s.url + PathCaptcha + sid + ".png",
			"captcha_ts": fmt.Sprintf("%.3f", float64(time.Now().UnixMilli())/1000), "captcha_attempt": 1,
			"redirect_uri": s.url + PathCaptcha + sid, "remixstlid": randHex(8),
			"request_params": []any{},
		}})
		return
	}
	switch cfg.Fault {
	case TokenAPIError:
		writeJSON(w, vkError(9, "Flood control: too much captcha requests"))
	case TokenMissingToken:
		writeJSON(w, map[string]any{"response": map[string]any{}})
	default:
		writeJSON(w, map[string]any{"response": map[string]any{"token": s.issue("vkfake-anonym-")}})
	}
}

// ok is stages 3 and 4: POST calls.okcdn.ru/fb.do, told apart by method.
func (s *Server) ok(w http.ResponseWriter, r *http.Request) {
	method := ""
	if r.Method == http.MethodPost {
		// Peek at the method before counting the hit against a stage.
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err == nil {
			method = r.PostForm.Get("method")
		}
	}
	switch method {
	case "auth.anonymLogin":
		s.anonymLogin(w, r)
	case "vchat.joinConversationByLink":
		s.join(w, r)
	default:
		s.reject("fb.do", fmt.Sprintf("method %q", method))
		writeJSON(w, okError(3, "Method not found"))
	}
}

func (s *Server) anonymLogin(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.begin(w, r, StageOK)
	if !ok {
		return
	}
	if !s.want(StageOK, r, "format", "JSON", "application_key", ApplicationKey, "session_data", "") {
		writeJSON(w, okError(100, "PARAM : Missing required parameter"))
		return
	}
	var sd struct {
		Version    int    `json:"version"`
		DeviceID   string `json:"device_id"`
		ClientType string `json:"client_type"`
	}
	if err := json.Unmarshal([]byte(r.PostForm.Get("session_data")), &sd); err != nil || sd.DeviceID == "" || sd.Version != 2 || sd.ClientType == "" {
		s.reject(StageOK, "session_data")
		writeJSON(w, okError(100, "PARAM : Invalid session_data"))
		return
	}
	switch cfg.Fault {
	case OKLoginAPIError:
		writeJSON(w, okError(401, "AUTH_LOGIN : Anonymous login is disabled"))
	case OKLoginMissingSessionKey:
		writeJSON(w, map[string]any{"uid": "0", "api_server": "https://api.ok.ru/"})
	default:
		writeJSON(w, map[string]any{"uid": "0", "session_key": s.issue("vkfake-session-"), "api_server": "https://api.ok.ru/"})
	}
}

func (s *Server) join(w http.ResponseWriter, r *http.Request) {
	cfg, ok := s.begin(w, r, StageJoin)
	if !ok {
		return
	}
	if !s.want(StageJoin, r, "format", "JSON", "application_key", ApplicationKey, "isVideo", "false",
		"protocolVersion", "5", "joinLink", "", "anonymToken", "", "session_key", "") {
		writeJSON(w, okError(100, "PARAM : Missing required parameter"))
		return
	}
	if !s.known(r.PostForm.Get("anonymToken")) || !s.known(r.PostForm.Get("session_key")) {
		s.reject(StageJoin, "unknown anonymToken or session_key")
		writeJSON(w, okError(102, "PARAM_SESSION_EXPIRED : Session expired"))
		return
	}
	if cfg.JoinToken != "" && r.PostForm.Get("joinLink") != cfg.JoinToken {
		writeJSON(w, okError(300, "NOT_FOUND : Conversation not found"))
		return
	}
	user, cred := cfg.Username, cfg.Credential
	if cfg.RESTSecret != "" {
		ttl := cfg.TTL
		if ttl <= 0 {
			ttl = time.Hour
		}
		expiry := time.Now().Add(ttl)
		if cfg.Fault == JoinExpired {
			expiry = time.Now().Add(-time.Minute)
		}
		s.mu.Lock()
		s.minted++
		n := s.minted
		s.mu.Unlock()
		user, cred = RESTCredentials(cfg.RESTSecret, fmt.Sprintf("vkfake-%d", n), expiry)
	}
	transport := cfg.Transport
	if transport == "" {
		transport = "udp"
	}
	ts := map[string]any{"username": user, "credential": cred,
		"urls": []any{"turn:" + cfg.TURNAddr + "?transport=" + transport}}
	switch cfg.Fault {
	case JoinAPIError:
		writeJSON(w, okError(455, "CALL_LINK_INVALID : Link is not valid"))
		return
	case JoinMissingTURNServer:
		writeJSON(w, map[string]any{"endpoint": "wss://videowebrtc.okcdn.ru/ws", "id": randHex(4)})
		return
	case JoinMissingUsername:
		delete(ts, "username")
	case JoinMissingCredential:
		delete(ts, "credential")
	case JoinMissingURL:
		ts["urls"] = []any{}
	case JoinInvalidURL:
		ts["urls"] = []any{"stun:" + cfg.TURNAddr}
	}
	writeJSON(w, map[string]any{"endpoint": "wss://videowebrtc.okcdn.ru/ws", "id": randHex(4), "turn_server": ts,
		"stun_server": map[string]any{"urls": []any{"stun:" + cfg.TURNAddr}}})
}

// RESTCredentials are TURN REST credentials for user expiring at expiry:
// username "<unix expiry>:<user>", password base64(HMAC-SHA1(secret, username)).
func RESTCredentials(secret, user string, expiry time.Time) (username, password string) {
	username = strconv.FormatInt(expiry.Unix(), 10) + ":" + user
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// captchaPage is what a person sees at redirect_uri: the answer to type
// back (a stand-in for VK's "I'm not a robot" page, which hands the
// browser a success token).
func (s *Server) captchaPage(w http.ResponseWriter, r *http.Request) {
	sid := strings.TrimPrefix(r.URL.Path, PathCaptcha)
	if img, ok := strings.CutSuffix(sid, ".png"); ok {
		sid = img
	}
	answer := s.Answer(sid)
	if answer == "" {
		http.Error(w, "no such captcha", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, "<!doctype html><title>vkfake captcha</title><p>Type this answer back: <code id=\"answer\">%s</code></p>\n", html.EscapeString(answer))
}
