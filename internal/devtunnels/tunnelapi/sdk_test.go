package tunnelapi

import (
	"context"
	"errors"
	"io"
	"log"
	"net/url"
	"strings"
	"testing"
	"time"

	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"
)

// The official Go SDK v0.1.28 against the API over real HTTP. Gotchas
// (docs/protocols/devtunnels.md §4): request options must never be nil, the client logger
// must be non-nil, errors are unexported and carry the status in the text.

const sdkAPIVersion = "2023-09-27-preview"

func sdkManager(t *testing.T, e *env, authz string) *tunnels.Manager {
	t.Helper()
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	m, err := tunnels.NewManager([]tunnels.UserAgent{{Name: "warren-test", Version: "1"}},
		func() string { return authz }, u, e.srv.Client(), sdkAPIVersion)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// wantStatus checks that err is the SDK's error for an HTTP status.
func wantStatus(t *testing.T, err error, status string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), "response: "+status) {
		t.Fatalf("error %v, want status %s", err, status)
	}
}

func TestSDK(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ops := sdkManager(t, e, "Bearer "+e.apiKey)

	// Create: the SDK first asks /clusters/recommendations, takes the
	// relay's cluster id ("127": its host 127.0.0.1:P starts with it, so
	// the SDK does not rewrite the host), then PUTs /tunnels/{tunnelId}.
	var selected []tunnels.ClusterSelection
	ops.OnClusterSelected = func(s tunnels.ClusterSelection) { selected = append(selected, s) }
	tun, err := ops.CreateTunnel(ctx, &tunnels.Tunnel{TunnelID: "sdk-one", Name: "sdk-one", Labels: []string{"l1"}, Description: "from the sdk"}, &tunnels.TunnelRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tun.TunnelID != "sdk-one" || tun.Name != "sdk-one" || tun.ClusterID != "127" || tun.Description != "from the sdk" {
		t.Fatalf("created %+v", tun)
	}
	if len(selected) != 1 || selected[0].ClusterID != "127" || selected[0].Source != tunnels.ClusterSourceRecommended {
		t.Errorf("cluster selection %+v", selected)
	}
	// A generated id and a name-less tunnel work as well.
	gen, err := ops.CreateTunnel(ctx, &tunnels.Tunnel{}, &tunnels.TunnelRequestOptions{})
	if err != nil || gen.TunnelID == "" || gen.Name != gen.TunnelID {
		t.Fatalf("create with generated id: %v %+v", err, gen)
	}
	// The SDK never sends its If-Not-Match header (it only writes it into
	// options.AdditionalHeaders, which it does not read), so creating an
	// existing tunnel through it is an update, not a 409.
	if _, err := ops.CreateTunnel(ctx, &tunnels.Tunnel{TunnelID: "sdk-one", Name: "sdk-one"}, &tunnels.TunnelRequestOptions{}); err != nil {
		t.Errorf("second CreateTunnel: %v", err)
	}

	// Ports.
	ref := &tunnels.Tunnel{Name: "sdk-one"}
	port, err := ops.CreateTunnelPort(ctx, ref, &tunnels.TunnelPort{PortNumber: 8080, Protocol: "http"}, &tunnels.TunnelRequestOptions{})
	if err != nil || port.PortNumber != 8080 || port.Protocol != "http" || port.PortForwardingURIs == nil {
		t.Fatalf("CreateTunnelPort: %v %+v", err, port)
	}
	if _, err := ops.CreateTunnelPort(ctx, ref, &tunnels.TunnelPort{PortNumber: 22}, &tunnels.TunnelRequestOptions{}); err != nil {
		t.Fatal(err)
	}
	ports, err := ops.ListTunnelPorts(ctx, ref, &tunnels.TunnelRequestOptions{})
	if err != nil || len(ports) != 2 || ports[0].PortNumber != 22 || ports[1].PortNumber != 8080 {
		t.Fatalf("ListTunnelPorts: %v %+v", err, ports)
	}
	if p, err := ops.GetTunnelPort(ctx, ref, 8080, &tunnels.TunnelRequestOptions{}); err != nil || p.Protocol != "http" {
		t.Fatalf("GetTunnelPort: %v %+v", err, p)
	}
	if p, err := ops.UpdateTunnelPort(ctx, ref, &tunnels.TunnelPort{PortNumber: 22, Description: "ssh"}, []string{"Description"}, &tunnels.TunnelRequestOptions{}); err != nil || p.Description != "ssh" || p.Protocol != "auto" {
		t.Fatalf("UpdateTunnelPort: %v %+v", err, p)
	}

	// Partial tunnel update: only Description changes, labels stay.
	upd, err := ops.UpdateTunnel(ctx, &tunnels.Tunnel{Name: "sdk-one", TunnelID: "sdk-one", Description: "changed"}, []string{"Description"}, &tunnels.TunnelRequestOptions{})
	if err != nil || upd.Description != "changed" || len(upd.Labels) != 1 || upd.Labels[0] != "l1" {
		t.Fatalf("UpdateTunnel: %v %+v", err, upd)
	}

	// Listing parses the by-region answer.
	all, err := ops.ListTunnels(ctx, "", "", &tunnels.TunnelRequestOptions{})
	if err != nil || len(all) != 2 {
		t.Fatalf("ListTunnels: %v %d tunnels", err, len(all))
	}

	// Register a host endpoint with a host token obtained through the SDK.
	hostView, err := ops.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeHost}})
	if err != nil || hostView.AccessTokens[tunnels.TunnelAccessScopeHost] == "" {
		t.Fatalf("GetTunnel host token: %v %+v", err, hostView)
	}
	hostMgr := sdkManager(t, e, "")
	ep, err := hostMgr.UpdateTunnelEndpoint(ctx, hostView, &tunnels.TunnelEndpoint{
		ID: "h1-relay", HostID: "h1", ConnectionMode: tunnels.TunnelConnectionModeTunnelRelay,
		HostPublicKeys: []string{"AAAAC3NzaC1lZDI1NTE5AAAAIA=="},
	}, nil, &tunnels.TunnelRequestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wsBase := "ws://" + e.srv.Listener.Addr().String()
	if ep.HostRelayURI != wsBase+"/relay/host/sdk-one" || ep.ClientRelayURI != wsBase+"/relay/client/sdk-one" {
		t.Errorf("endpoint URIs %q %q", ep.HostRelayURI, ep.ClientRelayURI)
	}

	// A client: connect token, exactly one endpoint.
	view, err := ops.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{IncludePorts: true, TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeConnect}})
	if err != nil {
		t.Fatal(err)
	}
	connectTok := view.AccessTokens[tunnels.TunnelAccessScopeConnect]
	if connectTok == "" || len(view.Endpoints) != 1 || len(view.Ports) != 2 || view.ClusterID != "127" {
		t.Fatalf("GetTunnel for a client: %+v", view)
	}
	if view.Status == nil || view.Status.PortCount == nil || view.Status.PortCount.Current != 2 || view.Status.HostConnectionCount.Current != 1 {
		t.Errorf("status %+v", view.Status)
	}
	// The client gets past its endpoint checks and dials the ws:// URI
	// (no relay is listening here, so the handshake itself fails).
	client, err := tunnels.NewClient(log.New(io.Discard, "", 0), view, false)
	if err != nil {
		t.Fatal(err)
	}
	err = client.Connect(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "handshake failed with status") {
		t.Errorf("Connect: %v, want a failed WebSocket handshake", err)
	}

	// A second manager with no credentials of its own, using the connect
	// token: reads work, writes are 403.
	anon := sdkManager(t, e, "")
	asClient := &tunnels.TunnelRequestOptions{AccessToken: connectTok}
	if got, err := anon.GetTunnel(ctx, ref, asClient); err != nil || got.TunnelID != "sdk-one" {
		t.Fatalf("GetTunnel with connect token: %v %+v", err, got)
	}
	if ps, err := anon.ListTunnelPorts(ctx, ref, asClient); err != nil || len(ps) != 2 {
		t.Fatalf("ListTunnelPorts with connect token: %v %+v", err, ps)
	}
	// The token also works from tunnel.AccessTokens, as the SDK picks it.
	if _, err := anon.GetTunnel(ctx, view, &tunnels.TunnelRequestOptions{}); err != nil {
		t.Fatalf("GetTunnel with accessTokens: %v", err)
	}
	_, err = anon.CreateTunnelPort(ctx, ref, &tunnels.TunnelPort{PortNumber: 9000}, &tunnels.TunnelRequestOptions{AccessToken: connectTok})
	wantStatus(t, err, "403")
	wantStatus(t, anon.DeleteTunnel(ctx, ref, &tunnels.TunnelRequestOptions{AccessToken: connectTok}), "403")
	// Asking for a host token with a connect token is refused.
	_, err = anon.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{AccessToken: connectTok, TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeHost}})
	wantStatus(t, err, "403")

	// Another tunnel's token is refused.
	otherView, err := ops.GetTunnel(ctx, &tunnels.Tunnel{Name: gen.Name}, &tunnels.TunnelRequestOptions{TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeConnect, tunnels.TunnelAccessScopeManage}})
	if err != nil {
		t.Fatal(err)
	}
	foreign := otherView.AccessTokens[tunnels.TunnelAccessScopeManage]
	_, err = anon.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{AccessToken: foreign})
	wantStatus(t, err, "403")
	wantStatus(t, anon.DeleteTunnel(ctx, ref, &tunnels.TunnelRequestOptions{AccessToken: foreign}), "403")
	// No credentials at all: 401.
	_, err = anon.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{})
	wantStatus(t, err, "401")

	// Tear down: port, endpoint, tunnel.
	if err := ops.DeleteTunnelPort(ctx, ref, 8080, &tunnels.TunnelRequestOptions{}); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, ops.DeleteTunnelPort(ctx, ref, 8080, &tunnels.TunnelRequestOptions{}), "404")
	if err := hostMgr.DeleteTunnelEndpoints(ctx, hostView, "h1-relay", &tunnels.TunnelRequestOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := ops.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{}); err != nil || len(got.Endpoints) != 0 {
		t.Fatalf("after endpoint delete: %v %+v", err, got)
	}
	if _, err := tunnels.NewClient(log.New(io.Discard, "", 0), view, false); err != nil {
		t.Fatal(err)
	}
	if err := ops.DeleteTunnel(ctx, ref, &tunnels.TunnelRequestOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = ops.GetTunnel(ctx, ref, &tunnels.TunnelRequestOptions{})
	wantStatus(t, err, "404")
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}
