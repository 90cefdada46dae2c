package tunnelhost

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// TestRelaySSHConfigNonePolicy: the host offers the none key exchange on
// wss and on loopback, and on plain ws beyond loopback only with
// AllowInsecureNone.
func TestRelaySSHConfigNonePolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		uri      string
		insecure bool
		want     bool
	}{
		{"wss://relay.example/relay/host/t", false, true},
		{"ws://127.0.0.1:8080/relay/host/t", false, true},
		{"ws://relay.example/relay/host/t", false, false},
		{"ws://relay.example/relay/host/t", true, true},
	} {
		h := newHost(t, Config{RelayURL: "http://relay.example", TunnelID: "t", APIKey: "k", AllowInsecureNone: tc.insecure})
		cfg := h.relaySSHConfig(tc.uri)
		if cfg.NoneKeyExchange != tc.want {
			t.Errorf("%s (allow insecure %v): offers none = %v, want %v", tc.uri, tc.insecure, cfg.NoneKeyExchange, tc.want)
		}
		if cfg.ChannelMaxPacket != ssh.MaxChannelMaxPacket {
			t.Errorf("%s: channel max packet %d", tc.uri, cfg.ChannelMaxPacket)
		}
	}
}

// TestHostKeysPublishedAndPersisted: two hosts in a row on the same key
// directory (tunnel-host restarted) publish the same ed25519 and ECDSA
// P-384 keys, and a V1 client that knows only dev-tunnels-ssh's host key
// algorithms (no ed25519) completes the nested handshake on the ECDSA one.
func TestHostKeysPublishedAndPersisted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	dir := t.TempDir()
	var published [][]string
	for range 2 {
		keys, err := hostkeys.LoadOrCreate(dir)
		if err != nil {
			t.Fatal(err)
		}
		cfg := e.hostConfig(port)
		cfg.Mode = ModeV1
		cfg.HostKeys = keys
		h := newHost(t, cfg)
		ctx, cancel := context.WithCancel(context.Background())
		res := make(chan error, 1)
		go func() { res <- h.Run(ctx) }()
		waitConnected(t, h)
		view := e.ClientView()
		if len(view.Endpoints) != 1 {
			t.Fatalf("endpoints %+v", view.Endpoints)
		}
		published = append(published, view.Endpoints[0].HostPublicKeys)
		if len(published) == 1 {
			checkECDSAOnlyClient(t, e, view, h)
		}
		cancel()
		select {
		case <-res:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	}
	if len(published[0]) != 2 {
		t.Fatalf("hostPublicKeys %v, want ed25519 and ECDSA", published[0])
	}
	for i := range published[0] {
		if published[0][i] != published[1][i] {
			t.Fatalf("host key %d changed across restart: %s vs %s", i, published[0][i], published[1][i])
		}
	}
}

func checkECDSAOnlyClient(t *testing.T, e *env, view tunnelproto.Tunnel, h *Host) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, _, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolClientV1},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + view.AccessTokens[tunnelproto.ScopeConnect]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var seen ssh.PublicKey
	sc, chans, reqs, err := ssh.NewClientConn(ws, "host", &ssh.ClientConfig{
		User:              "tunnel",
		HostKeyAlgorithms: []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA256},
		HostKeyCallback: func(_ string, _ net.Addr, k ssh.PublicKey) error {
			seen = k
			return nil
		},
		Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatalf("nested handshake with ECDSA host key algorithms only: %v", err)
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "test")
		}
	}()
	want := h.HostPublicKeys()[1]
	if seen == nil || !bytes.Equal(seen.Marshal(), want.Marshal()) {
		t.Fatalf("nested host key %v, want the ECDSA key", seen)
	}
	if got := base64.StdEncoding.EncodeToString(want.Marshal()); got != view.Endpoints[0].HostPublicKeys[1] {
		t.Fatalf("published key %s, want %s", view.Endpoints[0].HostPublicKeys[1], got)
	}
	if a := sc.(ssh.AlgorithmsConnMetadata).Algorithms(); a.KeyExchange == ssh.KeyExchangeNone || a.Read.Cipher == "none" {
		t.Fatalf("nested session negotiated %+v; it must stay encrypted", a)
	}
}
