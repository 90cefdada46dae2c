package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// getTunnel reads a tunnel with the operator key, with tokens of scopes.
func getTunnel(t *testing.T, relayURL, key, id string, scopes ...string) tunnelproto.Tunnel {
	t.Helper()
	u := relayURL + "/tunnels/" + id + "?includePorts=true&api-version=" + tunnelproto.APIVersion
	for _, s := range scopes {
		u += "&tokenScopes=" + s
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tun tunnelproto.Tunnel
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&tun) != nil {
		t.Fatalf("GET tunnel: %s", resp.Status)
	}
	return tun
}

// relayHostKey runs an SSH handshake on the relay's host socket, with the
// host key algorithms of dev-tunnels-ssh (no ed25519), and returns the key
// the relay presented.
func relayHostKey(t *testing.T, relayURL, id, hostToken string) ssh.PublicKey {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, _, err := wsconn.Dial(ctx, "ws"+strings.TrimPrefix(relayURL, "http")+"/relay/host/"+id, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolHostV2},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + hostToken}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var key ssh.PublicKey
	sc, _, reqs, err := ssh.NewClientConn(ws, "relay", &ssh.ClientConfig{
		User:              "tunnel",
		HostKeyAlgorithms: []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA256},
		HostKeyCallback:   func(_ string, _ net.Addr, k ssh.PublicKey) error { key = k; return nil },
		Timeout:           10 * time.Second,
	})
	if err != nil {
		t.Fatalf("relay SSH handshake: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	sc.Close()
	return key
}

// TestHostKeysPersistAcrossRestarts: relay-server keeps its SSH host keys
// in its data dir and tunnel-host in its state dir; both present the same
// keys after a restart.
func TestHostKeysPersistAcrossRestarts(t *testing.T) {
	dataDir := t.TempDir()
	relay, relayURL := startRelay(t, "admin-k", "--data-dir", dataDir)
	dir := t.TempDir()
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "host", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, admin, "relay-server", "tunnels", "create", "keys1", "--server", relayURL).wantCode(t, 0, "tunnels create")

	hostTok := getTunnel(t, relayURL, k.Key, "keys1", "host").AccessTokens["host"]
	first := relayHostKey(t, relayURL, "keys1", hostTok)
	onDisk, err := hostkeys.LoadOrCreate(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if first.Type() != ssh.KeyAlgoECDSA384 || !bytes.Equal(first.Marshal(), onDisk[1].PublicKey().Marshal()) {
		t.Fatalf("relay presented %s key, not the ECDSA key of its data dir", first.Type())
	}

	stateDir := filepath.Join(t.TempDir(), "state")
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY="+k.Key, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "ctl.sock"))
	published := func() []string {
		host := start(t, dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "keys1", "--state-dir", stateDir, "--port", "9")
		deadline := time.Now().Add(30 * time.Second)
		for {
			if eps := getTunnel(t, relayURL, k.Key, "keys1").Endpoints; len(eps) == 1 {
				host.cmd.Process.Signal(syscall.SIGTERM)
				if code := host.exitCode(t, 15*time.Second); code != 0 {
					t.Fatalf("tunnel-host exit %d\n%s", code, host.stderr)
				}
				return eps[0].HostPublicKeys
			}
			if time.Now().After(deadline) {
				t.Fatalf("no endpoint\n%s", host.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	a := published()
	b := published()
	if len(a) != 2 || strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatalf("hostPublicKeys before and after a restart: %v / %v", a, b)
	}
	for _, f := range []string{hostkeys.Ed25519File, hostkeys.ECDSAFile} {
		if st, err := os.Stat(filepath.Join(stateDir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, st, err)
		}
	}

	// The relay restarted on the same data dir presents the same key.
	relay.cmd.Process.Signal(syscall.SIGTERM)
	relay.exitCode(t, 15*time.Second)
	_, relayURL2 := startRelay(t, "admin-k", "--data-dir", dataDir)
	hostTok = getTunnel(t, relayURL2, k.Key, "keys1", "host").AccessTokens["host"]
	if again := relayHostKey(t, relayURL2, "keys1", hostTok); !bytes.Equal(again.Marshal(), first.Marshal()) {
		t.Fatal("relay host key changed across a restart")
	}
}
