package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestTunnelHostRefreshesRefusedToken: a host token the relay refuses (here
// one signed by another relay, so its signature fails like an expired one)
// makes tunnel-host renew it once through the API and connect.
func TestTunnelHostRefreshesRefusedToken(t *testing.T) {
	_, otherURL := startRelay(t, "admin-o")
	_, relayURL := startRelay(t, "admin-k")
	dir := t.TempDir()
	for _, u := range []struct{ url, key string }{{otherURL, "admin-o"}, {relayURL, "admin-k"}} {
		run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+u.key), "relay-server", "tunnels", "create", "rt", "--server", u.url).wantCode(t, 0, "create")
	}
	r := run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-o"), "relay-server", "tunnels", "token", "rt", "--scope", "host", "--server", otherURL)
	r.wantCode(t, 0, "token from the other relay")
	foreign := r.stdout[:len(r.stdout)-1]
	r = run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k"), "relay-server", "keys", "create", "--server", relayURL, "--name", "h", "--scope", "tunnels", "-o", "json")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	env := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_HOST_TOKEN="+foreign,
		"WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h.sock"))
	host := start(t, dir, env, "tunnel-host", "--relay", relayURL, "--tunnel", "rt", "--port", strconv.Itoa(int(echoServer(t))), "--log-format", "json")
	waitHostConnected(t, dir, env, "rt")
	host.stderr.wait(t, regexpOf(`refreshingTunnelAccessToken`), 5*time.Second)

	// Without an API key the refused token cannot be renewed: a clear fatal error.
	env2 := cleanEnv(t, "WARREN_TUNNEL_HOST_HOST_TOKEN="+foreign, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h2.sock"))
	r = run(t, dir, env2, "tunnel-host", "--relay", relayURL, "--tunnel", "rt", "--port", "1")
	r.wantCode(t, 1, "refused token, nothing to renew it with")
	if !regexpOf(`token`).MatchString(r.stderr) {
		t.Errorf("stderr: %s", r.stderr)
	}
}
