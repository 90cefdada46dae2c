package tunnelapi

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/auth/token"
)

// TestAuthorizationMatrix runs every tunnel route with every kind of caller
// against a fresh tunnel and checks allow (2xx) versus 403.
func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t)
	e.mkTunnel("other", nil)

	read := []string{"manage", "manage:ports", "host", "connect"}
	portsWrite := []string{"manage", "manage:ports", "host"}
	routes := []struct {
		method, path, body string
		headers            []string
		scopes             []string // token scopes allowed; nil: any
	}{
		{"GET", "", "", nil, read},
		{"PUT", "", `{"description":"x"}`, []string{"If-Match", "*"}, []string{"manage"}},
		{"DELETE", "", "", nil, []string{"manage"}},
		{"PUT", "/endpoints/h2-relay?connectionMode=TunnelRelay", `{"hostId":"h2"}`, nil, []string{"host"}},
		{"DELETE", "/endpoints/h1-relay", "", nil, []string{"host"}},
		{"GET", "/ports", "", nil, read},
		{"GET", "/ports/80", "", nil, read},
		{"PUT", "/ports/81", `{"portNumber":81}`, []string{"If-Not-Match", "*"}, portsWrite},
		{"PUT", "/ports/80", `{"protocol":"http"}`, []string{"If-Match", "*"}, portsWrite},
		{"DELETE", "/ports/80", "", nil, portsWrite},
		{"POST", "/events", `[]`, nil, nil},
	}
	callers := []string{"manage", "manage:ports", "host", "connect", "inspect", "create", "other-tunnel", "api-key", "admin"}

	i := 0
	for _, rt := range routes {
		for _, caller := range callers {
			i++
			id := fmt.Sprintf("m%d", i)
			e.mkTunnel(id, nil)
			e.mkPort(id, 80)
			e.mkEndpoint(id, "h1")

			var authz string
			allowed := true
			switch caller {
			case "admin":
				authz = admin
			case "api-key":
				authz = "Bearer " + e.apiKey
			case "other-tunnel":
				authz, allowed = e.token("other", "manage", "host", "connect"), false
			default:
				authz = e.token(id, caller)
				allowed = rt.scopes == nil || slices.Contains(rt.scopes, caller)
			}
			var body any
			if rt.body != "" {
				body = rt.body
			}
			r := e.do(rt.method, "/tunnels/"+id+rt.path, authz, body, rt.headers...)
			name := fmt.Sprintf("%s %s%s as %s", rt.method, "/tunnels/{id}", rt.path, caller)
			switch {
			case allowed && r.status != 200:
				t.Errorf("%s: status %d, want 200: %s", name, r.status, r.body)
			case !allowed:
				if r.status != 403 {
					t.Errorf("%s: status %d, want 403: %s", name, r.status, r.body)
				}
			}
		}
	}

	// A token for another tunnel learns nothing about unknown names; the
	// operator and a token of the (deleted) tunnel itself get 404.
	e.do("GET", "/tunnels/no-such", e.token("other", "manage"), nil).problem(t, 403)
	e.do("PUT", "/tunnels/no-such", e.token("other", "manage"), `{}`).problem(t, 403)
	e.do("PUT", "/tunnels/no-such", e.token("other", "manage"), `{}`, "If-Match", "*").problem(t, 403)
	e.do("GET", "/tunnels/no-such", admin, nil).problem(t, 404)
	gone := e.token("m1", "manage")
	e.do("DELETE", "/tunnels/m1", gone, nil).want(t, 200)
	e.do("GET", "/tunnels/m1", gone, nil).problem(t, 404)
	e.do("PUT", "/tunnels/m1", gone, `{}`, "If-Match", "*").problem(t, 404)
	// Tokens never create tunnels, not even their own id.
	e.do("PUT", "/tunnels/m1", gone, `{}`).problem(t, 403)
	e.do("PUT", "/tunnels/m1", gone, `{}`, "If-None-Match", "*").problem(t, 403)
	// An API key without the tunnels scope may do nothing.
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		e.do(m, "/tunnels/other", "Bearer "+e.ticketsKey, `{}`).problem(t, 403)
	}
	e.do("PUT", "/tunnels/new-one", "Bearer "+e.ticketsKey, `{}`).problem(t, 403)
}

func TestTokenScopes(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TokenTTL = 10 * time.Minute })
	e.mkTunnel("t1", nil)
	e.mkTunnel("t2", nil)

	get := func(authz, query string) *resp {
		t.Helper()
		return e.do("GET", "/tunnels/t1?"+query, authz, nil)
	}
	checkTokens := func(got map[string]string, want ...string) {
		t.Helper()
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, slices.Sorted(slices.Values(want))) {
			t.Fatalf("accessTokens keys %v, want %v", keys, want)
		}
		for scope, tok := range got {
			c, err := e.issuer.Verify(tok)
			if err != nil {
				t.Fatalf("%s token: %v", scope, err)
			}
			if c.TunnelID != "t1" || !slices.Equal(c.Scopes, []string{scope}) {
				t.Errorf("%s token claims %+v", scope, c)
			}
			if d := time.Until(c.Expiry); d < 9*time.Minute || d > 11*time.Minute {
				t.Errorf("%s token expires in %v, want ~10m", scope, d)
			}
		}
	}

	// The operator may obtain any scope, in every spelling of the parameter.
	for _, q := range []string{
		"tokenScopes=host&tokenScopes=connect",
		"tokenScopes=host,connect",
		"tokenScopes=host%20connect",
		"tokenScopes=host+connect,host",
		"tokenScopes=host&tokenScopes=connect&tokenScopes=host",
	} {
		checkTokens(get(admin, q).tunnel(t).AccessTokens, "host", "connect")
	}
	all := url.Values{"tokenScopes": {"manage", "manage:ports", "host", "connect", "inspect", "create"}}.Encode()
	checkTokens(get("Bearer "+e.apiKey, all).tunnel(t).AccessTokens, "manage", "manage:ports", "host", "connect", "inspect", "create")
	if tj := get(admin, "").tunnel(t); tj.AccessTokens != nil {
		t.Errorf("tokens without tokenScopes: %v", tj.AccessTokens)
	}
	if f := get(admin, "").fields(t); f["accessTokens"] != nil {
		t.Errorf("accessTokens present without tokenScopes")
	}

	// Token holders: their own scopes, or anything with manage.
	manage, host, connect := e.token("t1", "manage"), e.token("t1", "host"), e.token("t1", "connect")
	checkTokens(get(manage, "tokenScopes=host,connect,manage").tunnel(t).AccessTokens, "host", "connect", "manage")
	checkTokens(get(host, "tokenScopes=host").tunnel(t).AccessTokens, "host")
	checkTokens(get(connect, "tokenScopes=connect").tunnel(t).AccessTokens, "connect")
	get(connect, "tokenScopes=host").problem(t, 403)
	get(connect, "tokenScopes=connect,manage").problem(t, 403)
	get(host, "tokenScopes=connect").problem(t, 403)
	get(e.token("t1", "connect", "host"), "tokenScopes=connect,host").want(t, 200)
	p := get(admin, "tokenScopes=connect,superuser").problem(t, 400)
	if !strings.Contains(strings.Join(p.Errors["tokenScopes"], " "), "superuser") {
		t.Errorf("errors %v", p.Errors)
	}

	// Issued tokens work for what their scope allows, on their tunnel only.
	toks := get(admin, "tokenScopes=host,connect").tunnel(t).AccessTokens
	hostTok, connectTok := "Tunnel "+toks["host"], "Tunnel "+toks["connect"]
	e.do("PUT", "/tunnels/t1/endpoints/h1-relay", hostTok, `{}`).want(t, 200)
	e.do("PUT", "/tunnels/t1/ports/80", hostTok, `{}`).want(t, 200)
	e.do("GET", "/tunnels/t1/ports", connectTok, nil).want(t, 200)
	e.do("PUT", "/tunnels/t1/ports/81", connectTok, `{}`).problem(t, 403)
	e.do("PUT", "/tunnels/t1/endpoints/h1-relay", connectTok, `{}`).problem(t, 403)
	e.do("GET", "/tunnels/t2", connectTok, nil).problem(t, 403)

	// Creating and updating hand out tokens too.
	tj := e.do("PUT", "/tunnels/t3?tokenScopes=host", admin, `{}`, "If-None-Match", "*").tunnel(t)
	if c, err := e.issuer.Verify(tj.AccessTokens["host"]); err != nil || c.TunnelID != "t3" {
		t.Errorf("create token: %v %+v", err, c)
	}
	tj = e.do("PUT", "/tunnels/t1?tokenScopes=connect", manage, `{"description":"d"}`, "If-Match", "*").tunnel(t)
	checkTokens(tj.AccessTokens, "connect")
	// A bad tokenScopes makes the whole create fail, creating nothing.
	e.do("PUT", "/tunnels/t4?tokenScopes=bogus", admin, `{}`).problem(t, 400)
	e.do("GET", "/tunnels/t4", admin, nil).problem(t, 404)
}

// A token obtained with a token expires no later than the one presented,
// so a leaked token cannot renew itself past its own expiry; the operator's
// tokens get the full TokenTTL.
func TestTokensFromTokensExpireNoLater(t *testing.T) {
	e := newEnv(t) // TokenTTL: the default, an hour
	e.mkTunnel("t1", nil)
	short := func(scope string, ttl time.Duration) (string, time.Time) {
		t.Helper()
		g := e.grant("t1", []string{scope})
		g.TTL = ttl
		tok, exp, err := e.issuer.Issue(g)
		if err != nil {
			t.Fatal(err)
		}
		return "Tunnel " + tok, exp
	}
	expiry := func(tok string) time.Time {
		t.Helper()
		c, err := e.issuer.Verify(tok)
		if err != nil {
			t.Fatal(err)
		}
		return c.Expiry
	}
	for _, tc := range []struct{ scope, query string }{
		{"connect", "tokenScopes=connect"},
		{"host", "tokenScopes=host"},
		{"manage", "tokenScopes=manage,connect,host"},
	} {
		tok, exp := short(tc.scope, 5*time.Minute)
		for scope, got := range e.do("GET", "/tunnels/t1?"+tc.query, tok, nil).tunnel(t).AccessTokens {
			if ge := expiry(got); ge.After(exp) {
				t.Errorf("%s token obtained with a %s token expiring at %v expires at %v", scope, tc.scope, exp, ge)
			}
		}
	}
	// The renewed token renews no further either.
	tok, exp := short("connect", 5*time.Minute)
	for range 3 {
		got := e.do("GET", "/tunnels/t1?tokenScopes=connect", tok, nil).tunnel(t).AccessTokens["connect"]
		if ge := expiry(got); ge.After(exp) {
			t.Fatalf("renewed token expires at %v, after %v", ge, exp)
		}
		tok = "Tunnel " + got
	}
	// Updating hands out capped tokens too.
	tok, exp = short("manage", 5*time.Minute)
	tj := e.do("PUT", "/tunnels/t1?tokenScopes=manage", tok, `{"description":"d"}`, "If-Match", "*").tunnel(t)
	if ge := expiry(tj.AccessTokens["manage"]); ge.After(exp) {
		t.Errorf("manage token from an update expires at %v, after %v", ge, exp)
	}
	// A token past its expiry, though within the verifier's leeway,
	// obtains nothing.
	past, err := token.New(token.Config{Keys: e.keys, Issuer: testIssuer, Now: func() time.Time { return time.Now().Add(-10 * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	g := e.grant("t1", []string{"connect"})
	g.TTL = 5 * time.Second
	raw, _, err := past.Issue(g)
	if err != nil {
		t.Fatal(err)
	}
	tok = "Tunnel " + raw
	e.do("GET", "/tunnels/t1", tok, nil).want(t, 200)
	if p := e.do("GET", "/tunnels/t1?tokenScopes=connect", tok, nil).problem(t, 401); !strings.Contains(p.Detail, "expire") {
		t.Errorf("detail %q", p.Detail)
	}
	// The operator's tokens are not capped.
	for _, authz := range []string{admin, "Bearer " + e.apiKey} {
		got := e.do("GET", "/tunnels/t1?tokenScopes=connect", authz, nil).tunnel(t).AccessTokens["connect"]
		if d := time.Until(expiry(got)); d < 59*time.Minute {
			t.Errorf("operator's token expires in %v, want ~1h", d)
		}
	}
}

// Tokens are bound to one instance of a tunnel: once it is deleted, a
// tunnel created again with the same id refuses them with a 401 that says
// why, and tokens issued for the new tunnel work.
func TestTokensBoundToTunnelInstance(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/tunnels/re?tokenScopes=manage,connect,host", admin, `{}`).want(t, 200)
	old := e.do("GET", "/tunnels/re?tokenScopes=manage,connect,host", admin, nil).tunnel(t).AccessTokens
	for _, scope := range []string{"manage", "connect", "host"} {
		e.do("GET", "/tunnels/re", "Tunnel "+old[scope], nil).want(t, 200)
	}
	e.do("DELETE", "/tunnels/re", admin, nil).want(t, 200)
	// Of the deleted tunnel, still a 404.
	e.do("GET", "/tunnels/re", "Tunnel "+old["manage"], nil).problem(t, 404)
	fresh := e.do("PUT", "/tunnels/re?tokenScopes=manage", admin, `{}`).tunnel(t).AccessTokens["manage"]

	for scope, tok := range old {
		p := e.do("GET", "/tunnels/re", "Tunnel "+tok, nil).problem(t, 401)
		if !strings.Contains(p.Detail, "earlier tunnel") {
			t.Errorf("%s token of the deleted tunnel: detail %q", scope, p.Detail)
		}
	}
	e.do("DELETE", "/tunnels/re", "Tunnel "+old["manage"], nil).problem(t, 401)
	e.do("PUT", "/tunnels/re/ports/80", "Tunnel "+old["host"], `{}`).problem(t, 401)
	e.do("GET", "/tunnels/re?tokenScopes=manage", "Tunnel "+old["manage"], nil).problem(t, 401)
	e.do("GET", "/tunnels/re", "Tunnel "+fresh, nil).want(t, 200)
}
