package tunnelapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/fakeclock"
	"github.com/warrenhq/warren/internal/store/sqlite"
)

func TestNewConfig(t *testing.T) {
	db, err := sqlite.Open(t.Context(), sqlite.MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	k, _ := token.GenerateKey(time.Now())
	ring, _ := token.NewKeyring([]token.Key{k})
	iss, _ := token.New(token.Config{Keys: ring, Issuer: testIssuer, MaxTTL: 2 * time.Hour})
	authn := &auth.Authenticator{AdminKey: adminKey}
	ok := Config{Store: db, Tokens: iss, Auth: authn, PublicURL: "http://127.0.0.1:8080"}

	bad := map[string]func(*Config){
		"no store":        func(c *Config) { c.Store = nil },
		"no tokens":       func(c *Config) { c.Tokens = nil },
		"no auth":         func(c *Config) { c.Auth = nil },
		"no public url":   func(c *Config) { c.PublicURL = "" },
		"ws public url":   func(c *Config) { c.PublicURL = "ws://127.0.0.1:8080" },
		"no host":         func(c *Config) { c.PublicURL = "http:///x" },
		"bare host":       func(c *Config) { c.PublicURL = "127.0.0.1:8080" },
		"userinfo":        func(c *Config) { c.PublicURL = "http://u:p@h" },
		"negative ttl":    func(c *Config) { c.TokenTTL = -time.Second },
		"ttl over maxttl": func(c *Config) { c.TokenTTL = 3 * time.Hour },
	}
	for name, edit := range bad {
		cfg := ok
		edit(&cfg)
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}

	for _, tc := range []struct{ public, host, client string }{
		{"http://127.0.0.1:8080", "ws://127.0.0.1:8080/relay/host/t1", "ws://127.0.0.1:8080/relay/client/t1"},
		{"http://127.0.0.1:8080/", "ws://127.0.0.1:8080/relay/host/t1", "ws://127.0.0.1:8080/relay/client/t1"},
		{"https://relay.example", "wss://relay.example/relay/host/t1", "wss://relay.example/relay/client/t1"},
		{"HTTPS://relay.example/warren/", "wss://relay.example/warren/relay/host/t1", "wss://relay.example/warren/relay/client/t1"},
		{"https://[::1]:8443/a/b?x=1#f", "wss://[::1]:8443/a/b/relay/host/t1", "wss://[::1]:8443/a/b/relay/client/t1"},
	} {
		cfg := ok
		cfg.PublicURL = tc.public
		a, err := New(cfg, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.public, err)
		}
		if got := a.HostRelayURI("t1"); got != tc.host {
			t.Errorf("%s: host relay URI %q, want %q", tc.public, got, tc.host)
		}
		if got := a.ClientRelayURI("t1"); got != tc.client {
			t.Errorf("%s: client relay URI %q, want %q", tc.public, got, tc.client)
		}
		if a.tokenTTL != DefaultTokenTTL || a.node != DefaultNode {
			t.Errorf("defaults: ttl %v node %q", a.tokenTTL, a.node)
		}
	}
}

func TestAPIVersion(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	for _, path := range []string{
		"/tunnels/t1",
		"/tunnels/t1?api-version=2022-08-22",
		"/tunnels/t1?api-version=",
		"/tunnels",
		"/nowhere",
		"/clusters/recommendations",
	} {
		p := e.raw("GET", path, admin, nil).problem(t, http.StatusBadRequest)
		if len(p.Errors["api-version"]) == 0 {
			t.Errorf("%s: errors %v do not name api-version", path, p.Errors)
		}
	}
	e.raw("GET", "/tunnels/t1?api-version="+tunnelproto.APIVersion, admin, nil).want(t, 200)
}

func TestRouting(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	for _, tc := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"GET", "/", 404, ""},
		{"GET", "/tunnels/t1/nope", 404, ""},
		{"GET", "/tunnels//ports", 404, ""},
		{"GET", "/tunnels/t1/ports/80/x", 404, ""},
		{"GET", "/clusters", 404, ""},
		{"POST", "/tunnels", 405, "GET"},
		{"POST", "/tunnels/t1", 405, "GET, PUT, DELETE"},
		{"GET", "/tunnels/t1/endpoints/h-relay", 405, "PUT, DELETE"},
		{"GET", "/tunnels/t1/events", 405, "POST"},
		{"DELETE", "/tunnels/t1/ports", 405, "GET"},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		r.problem(t, tc.status)
		if got := r.header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
	// A trailing slash is tolerated.
	e.do("GET", "/tunnels/t1/", admin, nil).want(t, 200)
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	forged := e.token("t1", "manage")
	forged = forged[:len(forged)-2] + "xx"
	for name, tc := range map[string]struct {
		authz  string
		status int
		detail string
	}{
		"none":             {"", 401, "Authorization"},
		"unknown scheme":   {"Basic dXNlcjpwYXNz", 401, "invalid"},
		"wrong admin key":  {"Bearer nope", 401, "invalid"},
		"unknown api key":  {"Bearer wrn_aaaaaaaaaaaaa_" + strings.Repeat("A", 43), 401, "invalid"},
		"garbage token":    {"Tunnel a.b.c", 401, "invalid"},
		"forged token":     {forged, 401, "invalid"},
		"expired token":    {e.expiredToken("t1", "manage"), 401, "expired"},
		"tickets-only key": {"Bearer " + e.ticketsKey, 403, "tunnels"},
		"lowercase scheme": {"tunnel " + strings.TrimPrefix(e.token("t1", "connect"), "Tunnel "), 200, ""},
		"bearer jwt":       {"Bearer " + strings.TrimPrefix(e.token("t1", "connect"), "Tunnel "), 200, ""},
		"api key":          {"Bearer " + e.apiKey, 200, ""},
		"admin":            {admin, 200, ""},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do("GET", "/tunnels/t1", tc.authz, nil)
			if tc.status == 200 {
				r.want(t, 200)
				return
			}
			p := r.problem(t, tc.status)
			if !strings.Contains(p.Detail, tc.detail) {
				t.Errorf("detail %q does not mention %q", p.Detail, tc.detail)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

func TestTunnelLifecycle(t *testing.T) {
	e := newEnv(t)

	// Create: name defaults to the id, clusterId is the relay's ("127",
	// from its public URL http://127.0.0.1:P), empty lists are [].
	r := e.do("PUT", "/tunnels/t1", "Bearer "+e.apiKey, map[string]any{"tunnelId": "t1", "domain": "example.test", "description": "first"}, "If-Not-Match", "*")
	got := r.tunnel(t)
	if got.TunnelID != "t1" || got.Name != "t1" || got.Domain != "example.test" || got.Description != "first" || got.Created == nil {
		t.Fatalf("created %+v", got)
	}
	f := r.fields(t)
	if string(f["clusterId"]) != `"127"` || string(f["endpoints"]) != "[]" {
		t.Errorf("clusterId %s endpoints %s", f["clusterId"], f["endpoints"])
	}
	if got.Status == nil || got.Status.PortCount == nil || got.Status.HostConnectionCount == nil {
		t.Errorf("status %+v", got.Status)
	}

	// Found by id, name and name.domain; unknown refs of each form are 404.
	for _, ref := range []string{"t1", "t1.example.test"} {
		if got := e.do("GET", "/tunnels/"+ref, admin, nil).tunnel(t); got.TunnelID != "t1" {
			t.Errorf("GET %s: %+v", ref, got)
		}
	}
	e.mkTunnel("t2", map[string]any{"name": "second", "domain": "example.test"})
	for _, ref := range []string{"t2", "second", "second.example.test"} {
		if got := e.do("GET", "/tunnels/"+ref, admin, nil).tunnel(t); got.TunnelID != "t2" || got.Name != "second" {
			t.Errorf("GET %s: %+v", ref, got)
		}
	}
	for _, ref := range []string{"nope", "no-such-name", "second.other.test", "t1.example.tes"} {
		e.do("GET", "/tunnels/"+ref, admin, nil).problem(t, 404)
	}

	// Create twice: 409 with either spelling of If-None-Match.
	for _, h := range []string{"If-Not-Match", "If-None-Match"} {
		e.do("PUT", "/tunnels/t1", admin, map[string]any{}, h, "*").problem(t, 409)
		e.do("PUT", "/tunnels/second", admin, map[string]any{}, h, "*").problem(t, 409)
	}
	e.do("PUT", "/tunnels/t1", admin, map[string]any{}, "If-None-Match", "*", "If-Match", "*").problem(t, 400)
	// If-Match on a missing tunnel: 404, nothing created.
	e.do("PUT", "/tunnels/t3", admin, map[string]any{"description": "x"}, "If-Match", "*").problem(t, 404)
	e.do("GET", "/tunnels/t3", admin, nil).problem(t, 404)
	// Neither header: create, then update.
	if got := e.do("PUT", "/tunnels/t3", admin, map[string]any{"description": "x"}).tunnel(t); got.Description != "x" {
		t.Errorf("upsert create: %+v", got)
	}
	if got := e.do("PUT", "/tunnels/t3", admin, map[string]any{"description": "y"}).tunnel(t); got.Description != "y" {
		t.Errorf("upsert update: %+v", got)
	}

	// Names may not shadow another tunnel's id or name.
	e.do("PUT", "/tunnels/t4", admin, map[string]any{"name": "t1"}).problem(t, 409)
	e.do("PUT", "/tunnels/t4", admin, map[string]any{"name": "second"}).problem(t, 409)
	e.do("PUT", "/tunnels/t3", admin, map[string]any{"name": "t1"}, "If-Match", "*").problem(t, 409)
	e.do("PUT", "/tunnels/second", admin, map[string]any{}).want(t, 200) // its own name: fine
	e.do("PUT", "/tunnels/t4", admin, map[string]any{"tunnelId": "t5"}).problem(t, 400)

	// Delete, by name; then everything about it is gone.
	e.mkPort("t2", 80)
	e.mkEndpoint("t2", "h1")
	e.do("DELETE", "/tunnels/second", admin, nil).want(t, 200)
	e.do("GET", "/tunnels/t2", admin, nil).problem(t, 404)
	e.do("GET", "/tunnels/t2/ports", admin, nil).problem(t, 404)
	e.do("DELETE", "/tunnels/t2", admin, nil).problem(t, 404)
	if ts, _ := e.store.ListTunnels(t.Context()); len(ts) != 2 {
		t.Errorf("%d tunnels left, want 2", len(ts))
	}
}

func TestListTunnels(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("a1", nil)
	e.mkTunnel("b2", nil)
	e.mkPort("a1", 22)
	r := e.do("GET", "/tunnels?global=true&includePorts=true", "Bearer "+e.apiKey, nil).want(t, 200)
	var list tunnelproto.TunnelListByRegionResponse
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Value) != 1 || list.Value[0].ClusterID != "127" || len(list.Value[0].Value) != 2 {
		t.Fatalf("list %s", r.body)
	}
	if a := list.Value[0].Value[0]; a.TunnelID != "a1" || len(a.Ports) != 1 || a.Ports[0].PortNumber != 22 {
		t.Errorf("first tunnel %+v", a)
	}
	e.do("GET", "/tunnels", e.token("a1", "manage"), nil).problem(t, 403)
	e.do("GET", "/tunnels", "Bearer "+e.ticketsKey, nil).problem(t, 403)
	e.do("GET", "/tunnels", "", nil).problem(t, 401)
}

func TestPartialUpdate(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", map[string]any{
		"name": "alpha", "domain": "example.test", "description": "desc",
		"labels": []string{"a", "b"}, "options": map[string]any{"isGloballyAvailable": true},
		"accessControl": map[string]any{"entries": []any{}},
	})
	before := e.do("GET", "/tunnels/t1", admin, nil).tunnel(t)
	upd := func(body string) tunnelproto.Tunnel {
		t.Helper()
		return e.do("PUT", "/tunnels/t1", e.token("t1", "manage"), body, "If-Match", "*").tunnel(t)
	}

	// What the SDK's UpdateTunnel(..., []string{"Description"}) sends.
	got := upd(`{"description":"new","tunnelId":"t1","clusterId":""}`)
	want := before
	want.Description = "new"
	if !sameTunnel(got, want) {
		t.Errorf("description update:\n got %+v\nwant %+v", got, want)
	}

	got = upd(`{"labels":["c"],"unknownField":{"x":1},"accessTokens":{"manage":"ignored"}}`)
	want.Labels = []string{"c"}
	if !sameTunnel(got, want) || len(got.AccessTokens) != 0 {
		t.Errorf("labels update:\n got %+v\nwant %+v", got, want)
	}

	// null clears; a null or empty name falls back to the tunnelId.
	got = upd(`{"labels":null,"options":null,"name":null}`)
	want.Labels, want.Options, want.Name = nil, nil, "t1"
	if !sameTunnel(got, want) {
		t.Errorf("null update:\n got %+v\nwant %+v", got, want)
	}
	got = upd(`{"name":"beta","domain":""}`)
	want.Name, want.Domain = "beta", ""
	if !sameTunnel(got, want) {
		t.Errorf("rename:\n got %+v\nwant %+v", got, want)
	}
	e.do("GET", "/tunnels/beta", admin, nil).want(t, 200)
	e.do("GET", "/tunnels/alpha", admin, nil).problem(t, 404)

	// An empty body changes nothing but Updated.
	if got = upd(``); !sameTunnel(got, want) {
		t.Errorf("empty update:\n got %+v\nwant %+v", got, want)
	}
}

func sameTunnel(a, b tunnelproto.Tunnel) bool {
	a.Status, b.Status = nil, nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"bad id", "PUT", "/tunnels/Bad_ID", `{}`, 400, "tunnelId"},
		{"id too long", "PUT", "/tunnels/" + strings.Repeat("a", 64), `{}`, 400, "tunnelId"},
		{"bad name", "PUT", "/tunnels/t2", `{"name":"Not Valid"}`, 400, "name"},
		{"name type", "PUT", "/tunnels/t2", `{"name":5}`, 400, "name"},
		{"bad domain", "PUT", "/tunnels/t2", `{"domain":"-x-"}`, 400, "domain"},
		{"long description", "PUT", "/tunnels/t2", `{"description":"` + strings.Repeat("é", 401) + `"}`, 400, "description"},
		{"nul description", "PUT", "/tunnels/t2", `{"description":"a\u0000b"}`, 400, "description"},
		{"labels type", "PUT", "/tunnels/t2", `{"labels":"a"}`, 400, "labels"},
		{"bad label", "PUT", "/tunnels/t2", `{"labels":["a b"]}`, 400, "labels"},
		{"null label", "PUT", "/tunnels/t2", `{"labels":[null]}`, 400, "labels"},
		{"options type", "PUT", "/tunnels/t2", `{"options":[1]}`, 400, "options"},
		{"malformed json", "PUT", "/tunnels/t2", `{"name":`, 400, "body"},
		{"not an object", "PUT", "/tunnels/t2", `[1,2]`, 400, "body"},
		{"trailing data", "PUT", "/tunnels/t2", `{} {}`, 400, "body"},
		{"update bad name", "PUT", "/tunnels/t1", `{"name":"UPPER"}`, 400, "name"},
		{"tunnel ports", "PUT", "/tunnels/t2", `{"ports":[{"portNumber":0}]}`, 400, "ports[0].portNumber"},
		{"tunnel ports dup", "PUT", "/tunnels/t2", `{"ports":[{"portNumber":1},{"portNumber":1}]}`, 400, "ports[1].portNumber"},
		{"tunnel port no number", "PUT", "/tunnels/t2", `{"ports":[{}]}`, 400, "ports[0].portNumber"},
		{"port 0", "PUT", "/tunnels/t1/ports/0", `{}`, 400, "portNumber"},
		{"port 65536", "PUT", "/tunnels/t1/ports/65536", `{}`, 400, "portNumber"},
		{"port name", "GET", "/tunnels/t1/ports/http", ``, 400, "portNumber"},
		{"port mismatch", "PUT", "/tunnels/t1/ports/80", `{"portNumber":81}`, 400, "portNumber"},
		{"port body range", "PUT", "/tunnels/t1/ports/80", `{"portNumber":70000}`, 400, "portNumber"},
		{"port fraction", "PUT", "/tunnels/t1/ports/80", `{"portNumber":80.5}`, 400, "portNumber"},
		{"port protocol", "PUT", "/tunnels/t1/ports/80", `{"protocol":"HTTP/1.1"}`, 400, "protocol"},
		{"port isDefault", "PUT", "/tunnels/t1/ports/80", `{"isDefault":"yes"}`, 400, "isDefault"},
		{"port tunnelId", "PUT", "/tunnels/t1/ports/80", `{"tunnelId":"t9"}`, 400, "tunnelId"},
		{"endpoint mode", "PUT", "/tunnels/t1/endpoints/h-relay?connectionMode=LocalNetwork", `{}`, 400, "connectionMode"},
		{"endpoint body mode", "PUT", "/tunnels/t1/endpoints/h-relay", `{"connectionMode":"LocalNetwork"}`, 400, "connectionMode"},
		{"endpoint id", "PUT", "/tunnels/t1/endpoints/h-relay", `{"id":"other-relay"}`, 400, "id"},
		{"endpoint path id", "PUT", "/tunnels/t1/endpoints/-relay", `{}`, 400, "id"},
		{"endpoint keys", "PUT", "/tunnels/t1/endpoints/h-relay", `{"hostPublicKeys":["not base64!"]}`, 400, "hostPublicKeys"},
		{"tokenScopes", "GET", "/tunnels/t1?tokenScopes=root", ``, 400, "tokenScopes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			p := e.do(tc.method, tc.path, admin, body).problem(t, tc.status)
			if len(p.Errors[tc.field]) == 0 {
				t.Errorf("errors %v do not name %q (detail %q)", p.Errors, tc.field, p.Detail)
			}
		})
	}
	// Nothing was created by the failed requests.
	e.do("GET", "/tunnels/t2", admin, nil).problem(t, 404)
	e.do("GET", "/tunnels/t1/ports/80", admin, nil).problem(t, 404)

	big := `{"description":"` + strings.Repeat("x", MaxBodyBytes) + `"}`
	e.do("PUT", "/tunnels/t1", admin, big).problem(t, http.StatusRequestEntityTooLarge)
}

func TestPorts(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	host := e.token("t1", "host")

	// Create: defaults, [] not null.
	r := e.do("PUT", "/tunnels/t1/ports/8080", host, map[string]any{"portNumber": 8080, "description": "web", "labels": []string{"x"}}, "If-Not-Match", "*")
	p := r.port(t)
	if p.PortNumber != 8080 || p.Protocol != "auto" || p.TunnelID != "t1" || p.Description != "web" {
		t.Errorf("created %+v", p)
	}
	if f := r.fields(t); string(f["portForwardingUris"]) != "[]" || string(f["clusterId"]) != `"127"` {
		t.Errorf("portForwardingUris %s clusterId %s", f["portForwardingUris"], f["clusterId"])
	}
	e.do("PUT", "/tunnels/t1/ports/8080", host, map[string]any{"portNumber": 8080}, "If-Not-Match", "*").problem(t, 409)
	e.do("PUT", "/tunnels/t1/ports/8080", host, map[string]any{}, "If-None-Match", "*").problem(t, 409)
	e.do("PUT", "/tunnels/t1/ports/9", host, map[string]any{}, "If-Match", "*").problem(t, 404)

	// Partial update keeps what the body leaves out.
	p = e.do("PUT", "/tunnels/t1/ports/8080", host, `{"protocol":"http"}`, "If-Match", "*").port(t)
	if p.Protocol != "http" || p.Description != "web" || !slices.Equal(p.Labels, []string{"x"}) {
		t.Errorf("updated %+v", p)
	}
	// Upsert without headers; body without portNumber is fine.
	e.do("PUT", "/tunnels/t1/ports/22", host, `{"protocol":"ssh","sshUser":"me","isDefault":true}`).want(t, 200)
	p = e.do("GET", "/tunnels/t1/ports/22", e.token("t1", "connect"), nil).port(t)
	if p.Protocol != "ssh" || p.SSHUser != "me" || !p.IsDefault {
		t.Errorf("port 22 %+v", p)
	}

	r = e.do("GET", "/tunnels/t1/ports", e.token("t1", "connect"), nil).want(t, 200)
	var list tunnelproto.TunnelPortList
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Value) != 2 || list.Value[0].PortNumber != 22 || list.Value[1].PortNumber != 8080 || !strings.Contains(string(r.body), `"nextLink":""`) {
		t.Errorf("list %s", r.body)
	}
	tj := e.do("GET", "/tunnels/t1?includePorts=true", admin, nil).tunnel(t)
	if len(tj.Ports) != 2 || tj.Status.PortCount.Current != 2 {
		t.Errorf("includePorts: %+v status %+v", tj.Ports, tj.Status.PortCount)
	}
	if tj := e.do("GET", "/tunnels/t1", admin, nil).tunnel(t); tj.Ports != nil {
		t.Errorf("ports without includePorts: %+v", tj.Ports)
	}

	e.do("DELETE", "/tunnels/t1/ports/22", host, nil).want(t, 200)
	e.do("DELETE", "/tunnels/t1/ports/22", host, nil).problem(t, 404)
	e.do("GET", "/tunnels/t1/ports/22", host, nil).problem(t, 404)

	// Ports given when the tunnel is created are created with it.
	tj = e.do("PUT", "/tunnels/t2?includePorts=true", admin, `{"ports":[{"portNumber":3000,"protocol":"http"},{"portNumber":22}]}`).tunnel(t)
	if len(tj.Ports) != 2 || tj.Ports[0].PortNumber != 22 || tj.Ports[1].Protocol != "http" {
		t.Errorf("tunnel with ports: %+v", tj.Ports)
	}
	// On update they are ignored.
	tj = e.do("PUT", "/tunnels/t2?includePorts=true", admin, `{"ports":[{"portNumber":4000}]}`).tunnel(t)
	if len(tj.Ports) != 2 {
		t.Errorf("update with ports: %+v", tj.Ports)
	}
}

func TestEndpoints(t *testing.T) {
	clock := fakeclock.Running()
	e := newEnv(t, func(c *Config) { c.Now = clock.Now })
	e.mkTunnel("t1", nil)
	host := e.token("t1", "host")
	base := "ws://" + e.srv.Listener.Addr().String()

	// What the Go SDK sends: hostEndpoints null, relay URIs empty.
	r := e.do("PUT", "/tunnels/t1/endpoints/h1-relay?connectionMode=TunnelRelay&includeSshGatewayPublicKey=true", host,
		`{"id":"h1-relay","connectionMode":"TunnelRelay","hostId":"h1","hostPublicKeys":["AAAAC3NzaC1lZDI1NTE5AAAAIA=="],"hostEndpoints":null}`)
	var ep tunnelproto.TunnelEndpoint
	if err := json.Unmarshal(r.want(t, 200).body, &ep); err != nil {
		t.Fatal(err)
	}
	if ep.HostRelayURI != base+"/relay/host/t1" || ep.ClientRelayURI != base+"/relay/client/t1" || ep.HostID != "h1" || ep.ConnectionMode != "TunnelRelay" {
		t.Errorf("endpoint %+v", ep)
	}
	if eps, _ := e.store.ListEndpoints(t.Context(), "t1"); len(eps) != 1 || eps[0].Node != DefaultNode {
		t.Errorf("stored %+v", eps)
	}

	// Exactly one endpoint while connected, carrying the relay URIs.
	tj := e.do("GET", "/tunnels/t1", e.token("t1", "connect"), nil).tunnel(t)
	if len(tj.Endpoints) != 1 || tj.Endpoints[0].ClientRelayURI != ep.ClientRelayURI || tj.Status.HostConnectionCount.Current != 1 {
		t.Fatalf("endpoints %+v", tj.Endpoints)
	}

	// A second live host: the most recently registered one is reported.
	clock.Advance(time.Second)
	e.do("PUT", "/tunnels/t1/endpoints/h2-relay", host, `{}`).want(t, 200) // hostId from the id, mode from the default
	tj = e.do("GET", "/tunnels/t1", admin, nil).tunnel(t)
	if len(tj.Endpoints) != 1 || tj.Endpoints[0].ID != "h2-relay" || tj.Endpoints[0].HostID != "h2" {
		t.Errorf("two live endpoints: %+v", tj.Endpoints)
	}
	e.setConnected("t1/h1-relay")
	tj = e.do("GET", "/tunnels/t1", admin, nil).tunnel(t)
	if len(tj.Endpoints) != 1 || tj.Endpoints[0].ID != "h1-relay" {
		t.Errorf("only h1 live: %+v", tj.Endpoints)
	}

	// No host connected: [] (not null), though endpoints are stored.
	e.setConnected()
	r = e.do("GET", "/tunnels/t1", admin, nil)
	if f := r.fields(t); string(f["endpoints"]) != "[]" {
		t.Errorf("endpoints %s, want []", f["endpoints"])
	}
	if tj := r.tunnel(t); tj.Status.HostConnectionCount.Current != 0 {
		t.Errorf("hostConnectionCount %+v", tj.Status.HostConnectionCount)
	}

	e.allConnected()
	e.do("DELETE", "/tunnels/t1/endpoints/h2-relay", host, nil).want(t, 200)
	e.do("DELETE", "/tunnels/t1/endpoints/h2-relay", host, nil).problem(t, 404)
	e.do("DELETE", "/tunnels/t1/endpoints/h1-relay", host, nil).want(t, 200)
	if f := e.do("GET", "/tunnels/t1", admin, nil).fields(t); string(f["endpoints"]) != "[]" {
		t.Errorf("endpoints after delete %s", f["endpoints"])
	}
}

func TestRelayURIsHTTPS(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicURL = "https://relay.example/warren/"; c.Node = "node-7" })
	e.mkTunnel("t1", nil)
	ep := e.mkEndpoint("t1", "h1")
	if ep.HostRelayURI != "wss://relay.example/warren/relay/host/t1" || ep.ClientRelayURI != "wss://relay.example/warren/relay/client/t1" {
		t.Errorf("endpoint %+v", ep)
	}
	tj := e.do("GET", "/tunnels/t1", admin, nil).tunnel(t)
	if len(tj.Endpoints) != 1 || tj.Endpoints[0].HostRelayURI != ep.HostRelayURI {
		t.Errorf("GET endpoints %+v", tj.Endpoints)
	}
	if eps, _ := e.store.ListEndpoints(t.Context(), "t1"); eps[0].Node != "node-7" {
		t.Errorf("node %q", eps[0].Node)
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("t1", nil)
	e.mkTunnel("t2", nil)
	for _, s := range []string{"connect", "inspect", "host"} {
		e.do("POST", "/tunnels/t1/events", e.token("t1", s), `[{"name":"x"}]`).want(t, 200)
	}
	e.do("POST", "/tunnels/t1/events", admin, `[]`).want(t, 200)
	e.do("POST", "/tunnels/t1/events", e.token("t2", "manage"), `[]`).problem(t, 403)
	e.do("POST", "/tunnels/t1/events", "", `[]`).problem(t, 401)
}

func TestClusterRecommendations(t *testing.T) {
	e := newEnv(t)
	// No credentials needed: the SDKs retry without them on 401.
	for _, auth := range []string{"", "Bearer " + e.apiKey, "Bearer nonsense"} {
		r := e.do("GET", "/clusters/recommendations?preferredClusterId=use1", auth, nil).want(t, 200)
		var rec tunnelproto.ClusterRecommendationResponse
		if err := json.Unmarshal(r.body, &rec); err != nil {
			t.Fatal(err)
		}
		if rec.RecommendedClusterID != "127" || rec.PreferredClusterID != "use1" || !rec.IsFallback ||
			len(rec.Recommendations) != 1 || rec.Recommendations[0].ClusterURI != "http://"+e.srv.Listener.Addr().String() {
			t.Errorf("auth %q: %s", auth, r.body)
		}
	}
	e.do("POST", "/clusters/recommendations", "", nil).problem(t, 405)
}

func TestDefaultClusterID(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:8080":             "127",
		"https://relay.example.com/warren":  "relay",
		"https://USE1.Tunnels.example.com/": "use1",
		"http://localhost:9000":             "localhost",
		"http://[::1]:8080":                 "local",
		"http://under_score.example":        "local",
		"::nonsense":                        "local",
	} {
		if got := DefaultClusterID(in); got != want {
			t.Errorf("DefaultClusterID(%q) = %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"", "-a", "A1", "a.b", strings.Repeat("a", 64)} {
		if err := ValidClusterID(bad); !errors.Is(err, ErrBadClusterID) {
			t.Errorf("ValidClusterID(%q) = %v", bad, err)
		}
	}
}
