package ticket

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var ticketRE = regexp.MustCompile(`^rly_[A-Za-z0-9_-]{43}$`)

// post sends a mint request with the Go client.
func (e *env) post(key, body string) (int, string, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest("POST", e.srv.URL+"/v1/tickets", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusCreated {
		var mb mintBody
		if json.Unmarshal(b, &mb) == nil {
			e.remember(mb.Ticket)
		}
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestMint(t *testing.T) {
	e := newEnv(t)
	before := e.now()
	status, body, h := e.post(keyGood, `{"workspace_id":"ws1","source_id":"exec-a","dest_id":"exec-b","ttl_seconds":300,"max_bytes":1073741824}`)
	if status != 201 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("got %d %s", status, body)
	}
	var mb mintBody
	decodeJSON(t, body, &mb)
	if !ticketRE.MatchString(mb.Ticket) {
		t.Errorf("ticket %q has the wrong shape", mb.Ticket)
	}
	if mb.UploadURL != "/v1/relay/"+mb.Ticket || mb.DownloadURL != mb.UploadURL {
		t.Errorf("urls %q %q", mb.UploadURL, mb.DownloadURL)
	}
	exp, err := time.Parse(time.RFC3339, mb.ExpiresAt)
	if err != nil || !strings.HasSuffix(mb.ExpiresAt, "Z") {
		t.Fatalf("expires_at %q: %v", mb.ExpiresAt, err)
	}
	if lo, hi := before.Add(300*time.Second).Truncate(time.Second), e.now().Add(301*time.Second); exp.Before(lo) || exp.After(hi) {
		t.Errorf("expires_at %v not about 300s from now", exp)
	}
	// Defaults.
	status, body, _ = e.post(keyGood, `{"workspace_id":"ws1","source_id":"a","dest_id":"b"}`)
	if status != 201 {
		t.Fatalf("got %d %s", status, body)
	}
	decodeJSON(t, body, &mb)
	e.relay.mu.Lock()
	tk := e.relay.tickets[mb.Ticket]
	e.relay.mu.Unlock()
	if tk.maxBytes != DefaultMaxBytes || tk.expires.Sub(e.now()) > DefaultTTL || tk.expires.Sub(e.now()) < DefaultTTL-time.Minute {
		t.Errorf("defaults: max %d, ttl %v", tk.maxBytes, tk.expires.Sub(e.now()))
	}
	if a, b := newTicketID(), newTicketID(); a == b || !ticketRE.MatchString(a) {
		t.Errorf("newTicketID %q %q", a, b)
	}
}

func TestMintValidation(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, body string
		status     int
		msg        string // substring of the error
	}{
		{"bad-json", `{"workspace_id":`, 400, "invalid JSON"},
		{"not-object", `[1,2]`, 400, "invalid JSON"},
		{"empty", ``, 400, "invalid JSON: empty body"},
		{"trailing", `{"workspace_id":"w","source_id":"s","dest_id":"d"} {}`, 400, "trailing data"},
		{"unknown-field", `{"workspace_id":"w","source_id":"s","dest_id":"d","colour":"red"}`, 400, `"colour"`},
		{"missing-workspace", `{"source_id":"s","dest_id":"d"}`, 400, "workspace_id is required"},
		{"empty-source", `{"workspace_id":"w","source_id":"","dest_id":"d"}`, 400, "source_id is required"},
		{"null-dest", `{"workspace_id":"w","source_id":"s","dest_id":null}`, 400, "dest_id is required"},
		{"ttl-zero", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":0}`, 400, "ttl_seconds"},
		{"ttl-negative", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":-5}`, 400, "ttl_seconds"},
		{"ttl-fraction", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":1.5}`, 400, "ttl_seconds"},
		{"ttl-string", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":"300"}`, 400, "ttl_seconds"},
		{"ttl-over-max", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":86401}`, 400, "ttl_seconds must be between 1 and 86400"},
		{"ttl-huge", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":9223372036854775807}`, 400, "ttl_seconds must be between 1 and 86400"},
		{"ttl-past-duration", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":9223372037}`, 400, "ttl_seconds must be between 1 and 86400"},
		{"max-bytes-zero", `{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":0}`, 400, "max_bytes must be at least 1"},
		{"max-bytes-91TB", `{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":91000000000000}`, 400, "max_bytes must be between 1 and 68719476736"},
		{"max-bytes-over-limit", `{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":68719476737}`, 400, "max_bytes must be between 1 and 68719476736"},
		{"max-bytes-limit-ok", `{"workspace_id":"w","source_id":"s","dest_id":"d","max_bytes":68719476736}`, 201, ""},
		{"too-large", `{"workspace_id":"` + strings.Repeat("w", 70<<10) + `"}`, 413, "request body too large"},
		{"ttl-max-ok", `{"workspace_id":"w","source_id":"s","dest_id":"d","ttl_seconds":86400,"max_bytes":1}`, 201, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, _ := e.post(keyGood, tc.body)
			if status != tc.status {
				t.Fatalf("got %d %s, want %d", status, body, tc.status)
			}
			if tc.msg != "" {
				var eb errBody
				decodeJSON(t, body, &eb)
				if !strings.Contains(eb.Error, tc.msg) {
					t.Fatalf("error %q does not mention %q", eb.Error, tc.msg)
				}
			}
		})
	}
}

// TestMintAuth: docs/protocols/ticket-relay.md §6.8 (mint side) with curl, plus the key store failing.
func TestMintAuth(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	url := e.srv.URL + "/v1/tickets"
	body := `{"workspace_id":"ws1","source_id":"a","dest_id":"b"}`
	json := []string{"-H", "Content-Type: application/json", "--data-binary", body}
	status, resp := e.curlStatus("POST", url, "", nil, json...)
	wantError(t, status, resp, 401, "missing or unknown API key")
	status, resp = e.curlStatus("POST", url, "not-a-key", nil, json...)
	wantError(t, status, resp, 401, "missing or unknown API key")
	status, resp = e.curlStatus("POST", url, keyNoScope, nil, json...)
	wantError(t, status, resp, 403, "forbidden: key lacks the tickets scope")
	status, resp = e.curlStatus("POST", url, keyBroken, nil, json...)
	wantError(t, status, resp, 500, "internal error")
	// A missing key is refused before the body is judged.
	status, resp = e.curlStatus("POST", url, "", nil, "--data-binary", "{")
	wantError(t, status, resp, 401, "missing or unknown API key")
	status, resp = e.curlStatus("POST", url, keyGood, nil, json...)
	if status != 201 {
		t.Fatalf("good key: %d %s", status, resp)
	}
	var mb mintBody
	decodeJSON(t, resp, &mb)
	e.remember(mb.Ticket)
}

func TestMethodsAndRoutes(t *testing.T) {
	e := newEnv(t)
	tk := e.mint(MintRequest{})
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/v1/tickets", 405, "POST"},
		{"DELETE", "/v1/relay/" + tk, 405, "GET, PUT"},
		{"POST", "/v1/relay/" + tk, 405, "GET, PUT"},
		{"HEAD", "/v1/relay/" + tk, 405, "GET, PUT"},
		{"GET", "/v1/elsewhere", 404, ""},
	} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d Allow=%q, want %d %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), tc.status, tc.allow)
		}
	}
	// HEAD did not claim the GET side.
	if _, put, get, _ := e.state(tk); put || get {
		t.Errorf("HEAD claimed a side")
	}
}

// TestWorkspaceCap: docs/protocols/ticket-relay.md §6.10.
func TestWorkspaceCap(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	body := func(ws string) string { return `{"workspace_id":"` + ws + `","source_id":"a","dest_id":"b"}` }
	var first string
	for i := range 16 {
		status, resp, _ := e.post(keyGood, body("ws1"))
		if status != 201 {
			t.Fatalf("mint %d: %d %s", i+1, status, resp)
		}
		if i == 0 {
			var mb mintBody
			decodeJSON(t, resp, &mb)
			first = mb.Ticket
		}
	}
	status, resp, _ := e.post(keyGood, body("ws1"))
	wantError(t, status, resp, 429, "workspace has too many live tickets (limit 16)")
	if status, resp, _ := e.post(keyGood, body("ws2")); status != 201 {
		t.Fatalf("ws2: %d %s", status, resp)
	}

	// Finish one ws1 transfer; its slot comes back.
	in, sum := writeRandomFile(t, e.dir, 1000)
	out := e.dir + "/cap-out"
	get := e.curlGet(first, out, out+".hdr")
	put, putBodyFile := e.curlPut(first, in, nil)
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v", s, pb)
	}
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET exit %d", code)
	}
	if status, resp, _ := e.post(keyGood, body("ws1")); status != 201 {
		t.Fatalf("after transfer: %d %s", status, resp)
	}
	status, resp, _ = e.post(keyGood, body("ws1"))
	wantError(t, status, resp, 429, "workspace has too many live tickets (limit 16)")

	// Expired tickets give their slots back at once, sweeper or not.
	e.advance(DefaultTTL + time.Second)
	if status, resp, _ := e.post(keyGood, body("ws1")); status != 201 {
		t.Fatalf("after expiry: %d %s", status, resp)
	}
	if got := e.metric("warren_ticket_active"); got != 1 { // the new one; ws2's expired too
		t.Errorf("active = %v, want 1", got)
	}
}

func TestMintGoAPI(t *testing.T) {
	e := newEnv(t, withConfig(func(c *Config) {
		c.WorkspaceCap = 1
		c.MaxTTL = time.Hour
		c.DefaultTTL = time.Minute
		c.DefaultMaxBytes = 1 << 10
		c.MaxBytesLimit = 1 << 20
	}))
	ctx := context.Background()
	if _, err := e.relay.Mint(ctx, MintRequest{WorkspaceID: "w", SourceID: "s", DestID: "d", MaxBytes: 1<<20 + 1}); !errors.Is(err, ErrBadRequest) ||
		!strings.Contains(err.Error(), "max_bytes must be between 1 and 1048576") {
		t.Errorf("max_bytes over the limit: %v", err)
	}
	if _, err := e.relay.Mint(ctx, MintRequest{WorkspaceID: "w", SourceID: "s"}); !errors.Is(err, ErrBadRequest) || StatusCode(err) != 400 {
		t.Errorf("missing dest: %v", err)
	}
	if _, err := e.relay.Mint(ctx, MintRequest{WorkspaceID: "w", SourceID: "s", DestID: "d", TTL: 2 * time.Hour}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("ttl over max: %v", err)
	}
	resp, err := e.relay.Mint(ctx, MintRequest{WorkspaceID: "w", SourceID: "s", DestID: "d"})
	if err != nil {
		t.Fatal(err)
	}
	e.remember(resp.Ticket)
	if d := resp.ExpiresAt.Sub(e.now()); d > time.Minute || d < 50*time.Second {
		t.Errorf("DefaultTTL not applied: %v", d)
	}
	if _, err := e.relay.Mint(ctx, MintRequest{WorkspaceID: "w", SourceID: "s", DestID: "d"}); !errors.Is(err, ErrWorkspaceFull) || StatusCode(err) != 429 {
		t.Errorf("cap 1: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.relay.Mint(cctx, MintRequest{WorkspaceID: "x", SourceID: "s", DestID: "d"}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled ctx: %v", err)
	}
}

func TestNewConfig(t *testing.T) {
	if _, err := New(Config{}, nil, nil); err == nil {
		t.Error("New without Authorize succeeded")
	}
	for _, c := range []Config{
		{Authorize: testAuthorize, IdleTimeout: -1},
		{Authorize: testAuthorize, DefaultTTL: 2 * time.Hour, MaxTTL: time.Hour},
		{Authorize: testAuthorize, MaxTTL: time.Millisecond},
		{Authorize: testAuthorize, DefaultMaxBytes: 2 << 30, MaxBytesLimit: 1 << 30},
		{Authorize: testAuthorize, MaxBytesLimit: -1},
	} {
		if _, err := New(c, nil, nil); err == nil {
			t.Errorf("New(%+v) succeeded", c)
		}
	}
	r, err := New(Config{Authorize: testAuthorize}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.cfg.DefaultTTL != DefaultTTL || r.cfg.MaxTTL != DefaultMaxTTL || r.cfg.DefaultMaxBytes != DefaultMaxBytes ||
		r.cfg.IdleTimeout != DefaultIdleTimeout || r.cfg.WorkspaceCap != DefaultWorkspaceCap || r.cfg.SweepInterval != DefaultSweepInterval ||
		r.cfg.MaxBytesLimit != DefaultMaxBytesLimit {
		t.Errorf("defaults not applied: %+v", r.cfg)
	}
	// Registering twice on one registry fails loudly.
	e := newEnv(t)
	if _, err := New(Config{Authorize: testAuthorize}, nil, e.reg); err == nil {
		t.Error("duplicate metrics registration succeeded")
	}
}
