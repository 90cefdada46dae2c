package relayserver

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// TestHostSessionShowsInEndpoints: the relay WebSockets are mounted at the
// URIs the management API hands out, and endpoints[] follows the host
// session: [] before it connects, one entry while it is connected, [] after.
func TestHostSessionShowsInEndpoints(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	defer db.Close()
	// The public URL must be known before serving: open the listener first.
	ln := newListener(t)
	url, _ := serveOn(t, Config{AdminKey: "adm", Store: db, PublicURL: "http://" + ln.Addr().String()}, ln)
	q := "?api-version=" + tunnelproto.APIVersion
	if code, m := do(t, "PUT", url+"/tunnels/t1"+q, "Bearer adm", `{"tunnelId":"t1"}`); code != 200 {
		t.Fatalf("create tunnel: %d %v", code, m)
	}
	_, m := do(t, "GET", url+"/tunnels/t1"+q+"&tokenScopes=host", "Bearer adm", "")
	hostTok := m["accessTokens"].(map[string]any)["host"].(string)
	code, ep := do(t, "PUT", url+"/tunnels/t1/endpoints/h1-relay"+q+"&connectionMode=TunnelRelay", "Tunnel "+hostTok,
		`{"id":"h1-relay","hostId":"h1","connectionMode":"TunnelRelay","hostEndpoints":null}`)
	if code != 200 {
		t.Fatalf("put endpoint: %d %v", code, ep)
	}
	hostURI := ep["hostRelayUri"].(string)
	if !strings.HasPrefix(hostURI, "ws://") {
		t.Fatalf("hostRelayUri %q", hostURI)
	}
	endpoints := func() int {
		_, m := do(t, "GET", url+"/tunnels/t1"+q, "Bearer adm", "")
		return len(m["endpoints"].([]any))
	}
	if n := endpoints(); n != 0 {
		t.Fatalf("endpoints before the host connects: %d, want 0", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, resp, err := wsconn.Dial(ctx, hostURI, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolHostV2, tunnelproto.SubprotocolHostV1},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + hostTok}},
	})
	if err != nil {
		t.Fatalf("dial host relay: %v (%v)", err, resp)
	}
	if conn.Subprotocol() != tunnelproto.SubprotocolHostV2 {
		t.Fatalf("negotiated %q", conn.Subprotocol())
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "relay", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for ch := range chans {
			ch.Reject(ssh.Prohibited, "test host")
		}
	}()
	waitUntil(t, "one endpoint while connected", func() bool { return endpoints() == 1 })
	sc.Close()
	waitUntil(t, "no endpoint after the host left", func() bool { return endpoints() == 0 })
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
