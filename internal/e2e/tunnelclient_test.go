package e2e

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestConnectThroughBinaries: tunnel-host exposes a local HTTP server and a
// TCP echo; tunnel-client connect maps them to local ports; curl-like HTTP
// and 50 concurrent echo clients (hash-verified) go through relay-server.
func TestConnectThroughBinaries(t *testing.T) {
	for _, mode := range []string{"auto", "v1"} {
		t.Run(mode, func(t *testing.T) { connectThroughBinaries(t, mode) })
	}
}

func connectThroughBinaries(t *testing.T, mode string) {
	_, relayURL := startRelay(t, "admin-k")
	dir := t.TempDir()
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "e2e", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, admin, "relay-server", "tunnels", "create", "web", "--server", relayURL).wantCode(t, 0, "tunnels create")

	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from behind the tunnel, path %s", r.URL.Path)
	}))
	defer web.Close()
	webPort := web.Listener.Addr().(*net.TCPAddr).Port
	echo := int(echoServer(t))
	echo2 := int(echoServer(t)) // added to the host while the client runs
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h.sock"))
	start(t, dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "web", "--mode", mode,
		"--port", strconv.Itoa(webPort)+"/http", "--port", strconv.Itoa(echo))
	waitHostConnected(t, dir, hostEnv, "web")

	// The servers hold their own numbers on this machine: map them.
	lweb, lecho, lecho2 := freePort(t), freePort(t), freePort(t)
	client := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY_FILE="+keyFile), "tunnel-client", "connect", "web",
		"--relay", relayURL, "--mode", mode, "-o", "json",
		"--port-map", fmt.Sprintf("%d:%d,%d:%d,%d:%d", webPort, lweb, echo, lecho, echo2, lecho2))
	client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, lweb)), 30*time.Second)
	client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, lecho)), 30*time.Second)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/some/path", lweb))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "hello from behind the tunnel, path /some/path") {
		t.Fatalf("HTTP through the tunnel: %q", body)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- echoHash(fmt.Sprintf("127.0.0.1:%d", lecho), 128<<10, byte(i))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// A port the host adds while the client is connected becomes reachable.
	run(t, dir, hostEnv, "tunnel-host", "--tunnel", "web", "ports", "add", strconv.Itoa(echo2)).wantCode(t, 0, "ports add")
	client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, lecho2)), 30*time.Second)
	if err := echoHash(fmt.Sprintf("127.0.0.1:%d", lecho2), 64<<10, 99); err != nil {
		t.Fatalf("echo on the added port: %v", err)
	}

	client.cmd.Process.Signal(syscall.SIGTERM)
	if code := client.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("tunnel-client exit %d\n%s", code, client.stderr)
	}
}

// echoHash sends n bytes (a pattern from seed) with a half-close and checks
// the SHA-256 of what comes back.
func echoHash(addr string, n int, seed byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, n)
	for i := range data {
		data[i] = seed + byte(i*7)
	}
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		return err
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		return fmt.Errorf("connection %d: %d bytes back, hash differs", seed, len(got))
	}
	return nil
}

func TestConnectErrors(t *testing.T) {
	_, relayURL := startRelay(t, "admin-k")
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY=admin-k")
	r := run(t, dir, env, "tunnel-client", "connect", "nope", "--relay", relayURL)
	r.wantCode(t, 1, "unknown tunnel")
	if !strings.Contains(strings.ToLower(r.stderr), "not found") {
		t.Errorf("stderr: %s", r.stderr)
	}
	run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k"), "relay-server", "tunnels", "create", "idle", "--server", relayURL).wantCode(t, 0, "create")
	r = run(t, dir, env, "tunnel-client", "connect", "idle", "--relay", relayURL)
	r.wantCode(t, 1, "no host")
	if !strings.Contains(strings.ToLower(r.stderr), "host") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY=wrong"), "tunnel-client", "connect", "idle", "--relay", relayURL)
	r.wantCode(t, 1, "refused key")
	r = run(t, dir, env, "tunnel-client", "connect", "idle", "--relay", relayURL, "--port-map", "80")
	r.wantCode(t, 2, "bad port map")
}

// waitHostConnected polls `tunnel-host status` until the host is connected.
func waitHostConnected(t *testing.T, dir string, env []string, tunnel string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := run(t, dir, env, "tunnel-host", "--tunnel", tunnel, "status", "-o", "json")
		if r.code == 0 && strings.Contains(r.stdout, `"status": "connected"`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tunnel-host not connected: %s %s", r.stdout, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
