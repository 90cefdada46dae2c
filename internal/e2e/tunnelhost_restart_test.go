package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
)

// TestTunnelHostSurvivesRelayRestartAndIsReplaced: a V2 (auto) tunnel-host
// reconnects after relay-server is SIGKILLed and restarted, new clients
// work through it, and a second tunnel-host for the same tunnel makes the
// first one stop for good with a clear message.
func TestTunnelHostSurvivesRelayRestartAndIsReplaced(t *testing.T) {
	dataDir := t.TempDir()
	relay, relayURL := startRelay(t, "admin-k", "--data-dir", dataDir)
	listen := strings.TrimPrefix(relayURL, "http://")
	dir := t.TempDir()
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "host", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, admin, "relay-server", "tunnels", "create", "e2e2", "--server", relayURL).wantCode(t, 0, "tunnels create")
	port := echoServer(t)
	keyFile := filepath.Join(dir, "api.key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	hostEnv := func(sock string) []string {
		return cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, sock))
	}
	args := []string{"--relay", relayURL, "--tunnel", "e2e2", "--port", strconv.Itoa(int(port)), "--log-format", "json"}
	first := start(t, dir, hostEnv("a.sock"), "tunnel-host", args...)
	waitHostConnected(t, dir, hostEnv("a.sock"), "e2e2")

	echoThrough := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c := sdktest.Connect(t, ctx, relayURL, k.Key, "e2e2")
		defer c.Close()
		if err := sdktest.WaitForwarded(ctx, c, port); err != nil {
			t.Fatal(err)
		}
		if err := sdkEcho(ctx, c, port, "via a V2 host"); err != nil {
			t.Fatalf("echo: %v", err)
		}
	}
	echoThrough()

	relay.cmd.Process.Signal(syscall.SIGKILL)
	relay.exitCode(t, 10*time.Second)
	_, relayURL2 := startRelay(t, "admin-k", "--data-dir", dataDir, "--listen", listen)
	if relayURL2 != relayURL {
		t.Fatalf("relay came back at %s, not %s", relayURL2, relayURL)
	}
	waitHostConnected(t, dir, hostEnv("a.sock"), "e2e2")
	echoThrough()

	// A second host for the same tunnel replaces the first, which stops.
	start(t, dir, hostEnv("b.sock"), "tunnel-host", args...)
	if code := first.exitCode(t, 30*time.Second); code != 1 {
		t.Fatalf("replaced host exit %d, want 1\n%s", code, first.stderr)
	}
	first.stderr.wait(t, regexpOf(`replaced by another host`), time.Second)
	waitHostConnected(t, dir, hostEnv("b.sock"), "e2e2")
	echoThrough()
}
