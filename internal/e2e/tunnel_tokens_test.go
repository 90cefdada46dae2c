package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// jwtTimes reads exp and iat of a JWT without verifying it.
func jwtTimes(t *testing.T, tok string) (exp, iat int64) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a JWT", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Exp, Iat int64 }
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c.Exp, c.Iat
}

// TestTunnelTokensExpireAndBind: a token renewed with itself through
// ?tokenScopes expires no later than it did, so a leaked token's life stays
// bounded; and a tunnel deleted and created again under the same id
// refuses its predecessor's tokens, on the management API, for web
// forwarding and on the host relay socket, with a 401 that says why.
func TestTunnelTokensExpireAndBind(t *testing.T) {
	_, url := startRelay(t, "admin-k")
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	rs := func(args ...string) result {
		t.Helper()
		return run(t, dir, env, "relay-server", append(args, "--server", url)...)
	}
	tokenOf := func(scope string) string {
		t.Helper()
		r := rs("tunnels", "token", "t6", "--scope", scope)
		r.wantCode(t, 0, "tunnels token "+scope)
		return strings.TrimSpace(r.stdout)
	}
	get := func(path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const api = "?api-version=2023-09-27-preview"

	rs("tunnels", "create", "t6").wantCode(t, 0, "tunnels create")
	rs("tunnels", "ports", "add", "t6", "8080", "--protocol", "http").wantCode(t, 0, "ports add")
	tok := tokenOf("connect")
	exp, iat := jwtTimes(t, tok)
	// Renewing a second later would, unbounded, push exp a second on.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Unix() <= iat; {
		if time.Now().After(deadline) {
			t.Fatal("the clock did not reach the next second")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i := 0; i < 2; i++ {
		code, body := get("/tunnels/t6"+api+"&tokenScopes=connect", "Tunnel "+tok)
		if code != 200 {
			t.Fatalf("renew with the connect token: %d %s", code, body)
		}
		var tj struct {
			AccessTokens map[string]string `json:"accessTokens"`
		}
		decodeJSON(t, body, &tj)
		renewed := tj.AccessTokens["connect"]
		if got, _ := jwtTimes(t, renewed); got > exp {
			t.Fatalf("renewal %d: the renewed token expires at %d, after the presented one (%d)", i, got, exp)
		}
		tok = renewed
	}
	// The operator's tokens still get the relay's full lifetime.
	if got, _ := jwtTimes(t, tokenOf("connect")); got <= exp {
		t.Errorf("a token minted with the admin key expires at %d, not after %d", got, exp)
	}

	manage, connect, host := tokenOf("manage"), tokenOf("connect"), tokenOf("host")
	if code, body := get("/tunnels/t6"+api, "Tunnel "+manage); code != 200 {
		t.Fatalf("GET with the manage token: %d %s", code, body)
	}
	rs("tunnels", "delete", "t6").wantCode(t, 0, "tunnels delete")
	rs("tunnels", "create", "t6").wantCode(t, 0, "tunnels create again")
	rs("tunnels", "ports", "add", "t6", "8080", "--protocol", "http").wantCode(t, 0, "ports add again")

	for what, path := range map[string]string{"management API": "/tunnels/t6" + api, "web forwarding": "/tunnels/t6/ports/8080/"} {
		auth := "Tunnel " + manage
		if what == "web forwarding" {
			auth = "Tunnel " + connect
		}
		if code, body := get(path, auth); code != 401 || !strings.Contains(body, "earlier tunnel") {
			t.Errorf("%s with a token of the deleted tunnel: %d %s", what, code, body)
		}
	}
	if code, body := get("/tunnels/t6"+api+"&tokenScopes=manage", "Tunnel "+manage); code != 401 {
		t.Errorf("new tokens with a token of the deleted tunnel: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/relay/host/t6", &websocket.DialOptions{
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + host}},
		Subprotocols: []string{"tunnel-relay-host-v2-dev"},
	})
	if err == nil {
		c.CloseNow()
		t.Fatal("the host relay socket accepted a host token of the deleted tunnel")
	}
	if resp == nil || resp.StatusCode != 401 {
		t.Errorf("host relay socket with a token of the deleted tunnel: %v, %v", resp, err)
	}
	// Tokens of the new tunnel work.
	if code, body := get("/tunnels/t6"+api, "Tunnel "+tokenOf("manage")); code != 200 {
		t.Errorf("GET with a new manage token: %d %s", code, body)
	}
}
