package apiclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// The management API round trip against a real relay-server on loopback:
// tunnel, ports, endpoint, tokens, with the operator key and with tokens.
func TestManagementAPI(t *testing.T) {
	t.Parallel()
	r := relaytest.Start(t)
	ctx := testCtx(t)
	op := apiclient.New(apiclient.Config{BaseURL: r.URL + "/", Key: r.APIKey})
	if op.BaseURL() != r.URL {
		t.Errorf("BaseURL() = %q, want %q", op.BaseURL(), r.URL)
	}

	created, err := op.PutTunnel(ctx, &tunnelproto.Tunnel{TunnelID: "t2", Description: "second"}, apiclient.CreateOnly)
	if err != nil {
		t.Fatalf("PutTunnel: %v", err)
	}
	if created.TunnelID != "t2" || created.Description != "second" {
		t.Errorf("created %+v", created)
	}
	_, err = op.PutTunnel(ctx, &tunnelproto.Tunnel{TunnelID: "t2"}, apiclient.CreateOnly)
	if !errors.Is(err, apiclient.ErrConflict) {
		t.Errorf("second create: %v, want ErrConflict", err)
	}
	if _, err := op.PutTunnel(ctx, &tunnelproto.Tunnel{TunnelID: "t3"}, apiclient.UpdateOnly); !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("update of a missing tunnel: %v, want ErrNotFound", err)
	}

	list, err := op.ListTunnels(ctx)
	if err != nil {
		t.Fatalf("ListTunnels: %v", err)
	}
	var ids []string
	for _, reg := range list.Value {
		for _, tu := range reg.Value {
			ids = append(ids, tu.TunnelID)
		}
	}
	if strings.Join(ids, ",") != "t2,tun1" && strings.Join(ids, ",") != "tun1,t2" {
		t.Errorf("listed %v", ids)
	}

	p, err := op.PutPort(ctx, "t2", &tunnelproto.TunnelPort{PortNumber: 8080, Protocol: "http"}, apiclient.CreateOnly)
	if err != nil {
		t.Fatalf("PutPort: %v", err)
	}
	if p.PortNumber != 8080 || p.Protocol != "http" {
		t.Errorf("port %+v", p)
	}
	if _, err := op.PutPort(ctx, "t2", &tunnelproto.TunnelPort{PortNumber: 8080}, apiclient.CreateOnly); !errors.Is(err, apiclient.ErrConflict) {
		t.Errorf("second port create: %v, want ErrConflict", err)
	}
	ports, err := op.ListPorts(ctx, "t2")
	if err != nil || len(ports.Value) != 1 || ports.Value[0].PortNumber != 8080 {
		t.Fatalf("ListPorts = %+v, %v", ports, err)
	}

	// A host token reads the tunnel and registers an endpoint; the token
	// function is read on every call.
	tun, err := op.GetTunnel(ctx, "t2", apiclient.GetOptions{IncludePorts: true, TokenScopes: []string{tunnelproto.ScopeHost, tunnelproto.ScopeConnect}})
	if err != nil {
		t.Fatalf("GetTunnel: %v", err)
	}
	if len(tun.Ports) != 1 {
		t.Errorf("includePorts: %d ports", len(tun.Ports))
	}
	hostTok := apiclient.AccessToken(tun, tunnelproto.ScopeHost)
	connectTok := apiclient.AccessToken(tun, tunnelproto.ScopeConnect)
	if hostTok == "" || connectTok == "" || hostTok == connectTok {
		t.Fatalf("accessTokens %v", tun.AccessTokens)
	}
	tok := hostTok
	host := apiclient.New(apiclient.Config{BaseURL: r.URL, Token: func() string { return tok }})
	ep, err := host.PutEndpoint(ctx, "t2", &tunnelproto.TunnelEndpoint{
		ID: "h1-relay", HostID: "h1", ConnectionMode: tunnelproto.ConnectionModeTunnelRelay,
	})
	if err != nil {
		t.Fatalf("PutEndpoint: %v", err)
	}
	if !strings.HasPrefix(ep.HostRelayURI, "ws://") || !strings.HasPrefix(ep.ClientRelayURI, "ws://") {
		t.Errorf("endpoint URIs %q %q", ep.HostRelayURI, ep.ClientRelayURI)
	}
	tok = connectTok
	if err := host.DeleteEndpoint(ctx, "t2", "h1-relay"); !errors.Is(err, apiclient.ErrForbidden) {
		t.Errorf("DeleteEndpoint with a connect token: %v, want ErrForbidden", err)
	}
	tok = hostTok
	if err := host.DeleteEndpoint(ctx, "t2", "h1-relay"); err != nil {
		t.Errorf("DeleteEndpoint: %v", err)
	}
	if err := host.DeleteEndpoint(ctx, "t2", "h1-relay"); !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("second DeleteEndpoint: %v, want ErrNotFound", err)
	}
	if err := host.DeletePort(ctx, "t2", 8080); err != nil {
		t.Errorf("DeletePort: %v", err)
	}
	if err := host.DeletePort(ctx, "t2", 8080); !errors.Is(err, apiclient.ErrNotFound) {
		t.Errorf("second DeletePort: %v, want ErrNotFound", err)
	}

	if err := op.DeleteTunnel(ctx, "t2"); err != nil {
		t.Fatalf("DeleteTunnel: %v", err)
	}
	_, err = op.GetTunnel(ctx, "t2", apiclient.GetOptions{})
	var se *apiclient.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound || se.Op != "GET tunnel" {
		t.Fatalf("GET deleted tunnel: %v, want a 404 StatusError", err)
	}
	// The server's ProblemDetails: title and detail in Message, the raw
	// body in Body and the error text.
	if se.Message != `Not Found: tunnel "t2" not found` {
		t.Errorf("Message = %q", se.Message)
	}
	if !strings.HasPrefix(se.Body, "{") || !strings.HasPrefix(err.Error(), "GET tunnel: HTTP 404 Not Found: {") {
		t.Errorf("Body %q, Error() %q", se.Body, err.Error())
	}
}

// Credentials: none, a wrong key and a wrong token are 401s; the relay's
// other JSON APIs answer {"error": …}, which becomes the Message.
func TestCredentialsAndOtherAPIs(t *testing.T) {
	t.Parallel()
	r := relaytest.Start(t)
	ctx := testCtx(t)
	for name, cfg := range map[string]apiclient.Config{
		"none":        {BaseURL: r.URL},
		"wrong key":   {BaseURL: r.URL, Key: "wrn_nope"},
		"wrong token": {BaseURL: r.URL, Token: func() string { return "a.b.c" }},
		"empty token": {BaseURL: r.URL, Token: func() string { return "" }},
	} {
		_, err := apiclient.New(cfg).GetTunnel(ctx, r.Tunnel, apiclient.GetOptions{})
		if !errors.Is(err, apiclient.ErrUnauthorized) || errors.Is(err, apiclient.ErrForbidden) {
			t.Errorf("%s: %v, want ErrUnauthorized", name, err)
		}
	}

	admin := apiclient.New(apiclient.Config{BaseURL: r.URL, Key: relaytest.AdminKey})
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := admin.Do(ctx, "create key", http.MethodPost, "/api/v1/keys", map[string]any{"name": "x", "scopes": []string{"tunnels"}}, &k); err != nil || k.Key == "" {
		t.Fatalf("create key: %+v, %v", k, err)
	}
	err := admin.Do(ctx, "create key", http.MethodPost, "/api/v1/keys", map[string]any{"name": "y", "scopes": []string{"nonsense"}}, nil)
	var se *apiclient.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusBadRequest || se.Message == "" || se.Op != "create key" {
		t.Fatalf("bad scope: %#v", err)
	}
	if !strings.Contains(se.Message, `unknown scope "nonsense"`) {
		t.Errorf("Message %q is not the server's error", se.Message)
	}
}

// The errors that are not statuses: a base URL that makes no request URL,
// a 2xx answer that is not JSON, a relay that is not there.
func TestOtherErrors(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	_, err := apiclient.New(apiclient.Config{BaseURL: "::bad"}).GetTunnel(ctx, "x", apiclient.GetOptions{})
	if !errors.Is(err, apiclient.ErrInvalidURL) {
		t.Errorf("bad base URL: %v, want ErrInvalidURL", err)
	}

	r := relaytest.Start(t)
	// /healthz answers 200 with a JSON object, not the list asked for.
	var list []string
	err = apiclient.New(apiclient.Config{BaseURL: r.URL}).Do(ctx, "health", http.MethodGet, "/healthz", nil, &list)
	if !errors.Is(err, apiclient.ErrBadResponse) || !strings.HasPrefix(err.Error(), "health: ") {
		t.Errorf("unexpected 2xx body: %v, want ErrBadResponse", err)
	}

	addr := r.URL
	r.Shutdown()
	_, err = apiclient.New(apiclient.Config{BaseURL: addr}).GetTunnel(ctx, "x", apiclient.GetOptions{})
	var ue *url.Error
	if !errors.As(err, &ue) || errors.Is(err, apiclient.ErrInvalidURL) {
		t.Errorf("relay gone: %v, want the transport's *url.Error", err)
	}
}

// The Dev Tunnels SDKs read an accessTokens key as a space-separated scope
// list; tunnel-client and probe used to look the scope up as an exact key
// and missed such tokens.
func TestAccessToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		tokens map[string]string
		scope  string
		want   string
	}{
		{map[string]string{"connect": "c", "host": "h"}, "connect", "c"},
		{map[string]string{"connect": "c", "host": "h"}, "host", "h"},
		{map[string]string{"host connect": "hc"}, "connect", "hc"},
		{map[string]string{"host connect": "hc"}, "host", "hc"},
		{map[string]string{"manage  host": "mh"}, "host", "mh"},
		{map[string]string{"host connect": "hc", "connect": "c"}, "connect", "c"}, // exact key first
		{map[string]string{"manage:ports": "m"}, "manage", ""},                    // no prefix match
		{map[string]string{"hostile": "x"}, "host", ""},
		{nil, "connect", ""},
	}
	for _, c := range cases {
		if got := apiclient.AccessToken(&tunnelproto.Tunnel{AccessTokens: c.tokens}, c.scope); got != c.want {
			t.Errorf("AccessToken(%v, %q) = %q, want %q", c.tokens, c.scope, got, c.want)
		}
	}
	if got := apiclient.AccessToken(nil, "connect"); got != "" {
		t.Errorf("nil tunnel: %q", got)
	}
	// Two keys list the scope: the answer is the same on every call.
	tu := &tunnelproto.Tunnel{AccessTokens: map[string]string{"host connect": "a", "connect manage": "b"}}
	for range 20 {
		if got := apiclient.AccessToken(tu, "connect"); got != "b" {
			t.Fatalf("ambiguous keys: %q, want the first sorted key's %q", got, "b")
		}
	}
}
