package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
)

// echoServer listens on loopback and echoes every connection.
func echoServer(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func sdkEcho(ctx context.Context, c *tunnels.Client, port uint16, msg string) error {
	mine, theirs := net.Pipe()
	defer mine.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.ConnectToForwardedPort(fctx, theirs, port) }()
	mine.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := mine.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(mine, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch")
	}
	cancel()
	<-done
	return nil
}

// TestTunnelHostEndToEnd: the built relay-server and tunnel-host, with the
// official Dev Tunnels Go SDK client (v0.1.28) reaching a local echo server
// through them; ports changed over the control socket and by SIGHUP; a
// clean stop on SIGTERM.
func TestTunnelHostEndToEnd(t *testing.T) {
	_, relayURL := startRelay(t, "admin-k")
	dir := t.TempDir()
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "host", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, admin, "relay-server", "tunnels", "create", "e2e1", "--server", relayURL).wantCode(t, 0, "tunnels create")

	p1, p2, p3 := echoServer(t), echoServer(t), echoServer(t)
	cfgFile := filepath.Join(dir, "tunnel-host.yaml")
	writeCfg := func(ports ...uint16) {
		var b strings.Builder
		b.WriteString("relay: " + relayURL + "\ntunnel: e2e1\nmode: v1\nports:\n")
		for _, p := range ports {
			b.WriteString("  - \"" + strconv.Itoa(int(p)) + "/http\"\n")
		}
		os.WriteFile(cfgFile, []byte(b.String()), 0o600)
	}
	writeCfg(p1)
	keyFile := filepath.Join(dir, "api.key")
	os.WriteFile(keyFile, []byte(k.Key+"\n"), 0o600)
	sock := filepath.Join(dir, "ctl.sock")
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+sock)
	host := start(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "--log-format", "json")

	status := func() string {
		r := run(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "status", "-o", "json")
		if r.code != 0 {
			return "unreachable: " + r.stderr
		}
		return r.stdout
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; status %s\nhost stderr:\n%s", what, status(), host.stderr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("connected", func() bool { return strings.Contains(status(), `"status": "connected"`) })

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := sdktest.Connect(t, ctx, relayURL, k.Key, "e2e1")
	defer client.Close()
	if err := sdktest.WaitForwarded(ctx, client, p1); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(ctx, client, p1, "through the relay"); err != nil {
		t.Fatalf("echo on %d: %v", p1, err)
	}

	// A port added over the control socket reaches the connected client.
	run(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "ports", "add", strconv.Itoa(int(p2))).wantCode(t, 0, "ports add")
	if err := sdktest.WaitForwarded(ctx, client, p2); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(ctx, client, p2, "added while connected"); err != nil {
		t.Fatalf("echo on added port: %v", err)
	}
	run(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "ports", "remove", strconv.Itoa(int(p2))).wantCode(t, 0, "ports remove")
	if err := sdkEcho(ctx, client, p2, "removed"); err == nil {
		t.Fatal("a removed port still echoes")
	}
	run(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "ports", "add", "0").wantCode(t, 2, "ports add 0")

	// SIGHUP applies the port list of the edited config.
	writeCfg(p1, p3)
	host.cmd.Process.Signal(syscall.SIGHUP)
	if err := sdktest.WaitForwarded(ctx, client, p3); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(ctx, client, p3, "after SIGHUP"); err != nil {
		t.Fatalf("echo on port from SIGHUP: %v", err)
	}

	host.cmd.Process.Signal(syscall.SIGTERM)
	if code := host.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("tunnel-host exit %d after SIGTERM\n%s", code, host.stderr)
	}
	r = run(t, dir, admin, "relay-server", "tunnels", "show", "e2e1", "--server", relayURL)
	if !strings.Contains(r.stdout, "host:        none") {
		t.Errorf("after the host stopped:\n%s", r.stdout)
	}
	r = run(t, dir, hostEnv, "tunnel-host", "-c", cfgFile, "status")
	r.wantCode(t, 1, "status with no host running")
	if !strings.Contains(r.stderr, "no tunnel-host answers") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestTunnelHostConfigErrors(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY=k"), "tunnel-host", "--tunnel", "x")
	r.wantCode(t, 2, "no relay")
	if !strings.Contains(r.stderr, "config relay") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, cleanEnv(t), "tunnel-host", "--relay", "http://127.0.0.1:1", "--tunnel", "x", "--port", "99999", "config", "validate")
	r.wantCode(t, 2, "bad port")
	if !strings.Contains(r.stderr, "flag --port") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, cleanEnv(t), "tunnel-host", "--relay", "http://127.0.0.1:1", "--tunnel", "x")
	r.wantCode(t, 2, "no credential")
}

// Every tunnel-host log line names its tunnel once: tunnel=web1, not
// tunnel=web1 tunnel=web1.
func TestTunnelHostLogsTunnelOnce(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY=k", "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "ctl.sock"))
	// Nothing listens on port 1: the host logs its status and retries.
	host := start(t, dir, env, "tunnel-host", "--relay", "http://127.0.0.1:1", "--tunnel", "web1")
	host.stderr.wait(t, regexpOf(`msg="tunnel host reconnecting"`), 30*time.Second)
	for _, l := range strings.Split(host.stderr.String(), "\n") {
		if n := strings.Count(l, "tunnel=web1"); n > 1 {
			t.Errorf("tunnel=web1 %d times in: %s", n, l)
		}
	}
}
