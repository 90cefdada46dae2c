package tunnelapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/sqlite"
)

const (
	testIssuer = "http://relay.test"
	adminKey   = "test-admin-key-0123456789abcdef"
)

// env is a relay management API over real HTTP, with a real SQLite store,
// token issuer and authenticator.
type env struct {
	t          *testing.T
	srv        *httptest.Server
	api        *API
	store      store.Store
	keys       *token.Keyring
	issuer     *token.Issuer
	apiKey     string // operator key with scope "tunnels"
	ticketsKey string // operator key with scope "tickets" only

	mu        sync.Mutex
	connected map[string]bool // tunnelID/endpointID -> live; nil map: all live
}

func newEnv(t *testing.T, edit ...func(*Config)) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	k, err := token.GenerateKey(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	ring, err := token.NewKeyring([]token.Key{k})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := token.New(token.Config{Keys: ring, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: db, keys: ring, issuer: iss}
	e.apiKey = e.createKey("ops", apikey.ScopeTunnels)
	e.ticketsKey = e.createKey("tickets", apikey.ScopeTickets)

	e.srv = httptest.NewUnstartedServer(nil)
	cfg := Config{
		Store:     db,
		Tokens:    iss,
		Auth:      &auth.Authenticator{AdminKey: adminKey, Keys: db, Tokens: iss},
		PublicURL: "http://" + e.srv.Listener.Addr().String(),
		HostConnected: func(tunnelID, endpointID string) bool {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.connected == nil || e.connected[tunnelID+"/"+endpointID]
		},
	}
	for _, f := range edit {
		f(&cfg)
	}
	e.api, err = New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Config.Handler = e.api
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) createKey(name string, scopes ...string) string {
	e.t.Helper()
	plain, k, err := apikey.Generate(name, scopes, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.CreateAPIKey(context.Background(), auth.KeyToStore(k)); err != nil {
		e.t.Fatal(err)
	}
	return plain
}

// setConnected switches HostConnected from "all live" to an explicit set.
func (e *env) setConnected(live ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connected = map[string]bool{}
	for _, l := range live {
		e.connected[l] = true
	}
}

// allConnected makes every stored endpoint live again.
func (e *env) allConnected() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.connected = nil
}

// grant is a one-hour grant for the tunnel tunnelID now stored (or, if
// there is none, a tunnel created an hour ago).
func (e *env) grant(tunnelID string, scopes []string) token.Grant {
	e.t.Helper()
	created := time.Now().Add(-time.Hour)
	if t, err := e.store.GetTunnel(context.Background(), tunnelID); err == nil {
		created = t.Created
	}
	return token.Grant{TunnelID: tunnelID, TunnelCreated: created, Scopes: scopes, TTL: time.Hour}
}

// token issues a token for tunnelID with scopes.
func (e *env) token(tunnelID string, scopes ...string) string {
	e.t.Helper()
	tok, _, err := e.issuer.Issue(e.grant(tunnelID, scopes))
	if err != nil {
		e.t.Fatal(err)
	}
	return "Tunnel " + tok
}

// expiredToken is a genuine token that expired an hour ago.
func (e *env) expiredToken(tunnelID string, scopes ...string) string {
	e.t.Helper()
	past, err := token.New(token.Config{Keys: e.keys, Issuer: testIssuer, Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	if err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := past.Issue(e.grant(tunnelID, scopes))
	if err != nil {
		e.t.Fatal(err)
	}
	return "Tunnel " + tok
}

var (
	admin = "Bearer " + adminKey
)

// withVersion appends api-version to a path that may already have a query.
func withVersion(path string) string {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "api-version=" + tunnelproto.APIVersion
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request with api-version added. body is a string (sent as is)
// or a value to encode; headers are name, value pairs.
func (e *env) do(method, path, authz string, body any, headers ...string) *resp {
	e.t.Helper()
	return e.raw(method, withVersion(path), authz, body, headers...)
}

// raw is do without adding api-version.
func (e *env) raw(method, path, authz string, body any, headers ...string) *resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json;charset=UTF-8")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return &resp{status: res.StatusCode, header: res.Header, body: b}
}

// want fails the test unless r has status.
func (r *resp) want(t *testing.T, status int) *resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.body)
	}
	return r
}

// problem checks that r is a ProblemDetails with status and returns it.
func (r *resp) problem(t *testing.T, status int) tunnelproto.ProblemDetails {
	t.Helper()
	r.want(t, status)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	var p tunnelproto.ProblemDetails
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %s: %v", r.body, err)
	}
	if p.Title == "" || p.Status != status || p.Detail == "" {
		t.Fatalf("incomplete ProblemDetails %+v", p)
	}
	return p
}

func (r *resp) tunnel(t *testing.T) tunnelproto.Tunnel {
	t.Helper()
	r.want(t, http.StatusOK)
	var v tunnelproto.Tunnel
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("tunnel body %s: %v", r.body, err)
	}
	return v
}

func (r *resp) port(t *testing.T) tunnelproto.TunnelPort {
	t.Helper()
	r.want(t, http.StatusOK)
	var v tunnelproto.TunnelPort
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("port body %s: %v", r.body, err)
	}
	return v
}

// fields decodes r's body as a generic object, to check null vs [] and
// absent fields.
func (r *resp) fields(t *testing.T) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
	return m
}

// mkTunnel creates a tunnel as the operator.
func (e *env) mkTunnel(id string, body map[string]any) tunnelproto.Tunnel {
	e.t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["tunnelId"] = id
	return e.do("PUT", "/tunnels/"+id, admin, body, "If-Not-Match", "*").tunnel(e.t)
}

func (e *env) mkPort(id string, n int) {
	e.t.Helper()
	e.do("PUT", "/tunnels/"+id+"/ports/"+itoa(n), admin, map[string]any{"portNumber": n}).want(e.t, 200)
}

func (e *env) mkEndpoint(id, hostID string) tunnelproto.TunnelEndpoint {
	e.t.Helper()
	r := e.do("PUT", "/tunnels/"+id+"/endpoints/"+hostID+"-relay?connectionMode=TunnelRelay", admin,
		map[string]any{"id": hostID + "-relay", "hostId": hostID, "connectionMode": "TunnelRelay", "hostPublicKeys": []string{"AAAA"}, "hostEndpoints": nil})
	r.want(e.t, 200)
	var ep tunnelproto.TunnelEndpoint
	if err := json.Unmarshal(r.body, &ep); err != nil {
		e.t.Fatal(err)
	}
	return ep
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
