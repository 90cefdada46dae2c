package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tssdk"
)

// Interop with the official Dev Tunnels TypeScript SDK (testdata/tssdk, run
// by node through internal/devtunnels/tssdk) and the built binaries. The TS
// management calls alone are checked in tunnelapi's TestTSSDKManagement.

const tsWait = 60 * time.Second

// tsEnv is the environment of a TS script against relayURL with the admin
// key; protocol "1" or "2" forces the SDK's relay protocol (its own
// DEVTUNNELS_PROTOCOL_VERSION), "" lets it offer V2 then V1.
func tsEnv(relayURL, tunnel, protocol string, ports ...uint16) []string {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(int(p))
	}
	env := []string{
		"WARREN_TS_SERVICE=" + relayURL + "/",
		"WARREN_TS_AUTH=Bearer admin-k",
		"WARREN_TS_TUNNEL=" + tunnel,
		"WARREN_TS_PORTS=" + strings.Join(ps, ","),
	}
	if protocol != "" {
		env = append(env, "DEVTUNNELS_PROTOCOL_VERSION="+protocol)
	}
	return env
}

// tsEcho has the TS client send n bytes to port and checks they came back;
// it returns whether the stream was end-to-end encrypted (a SecureStream).
func tsEcho(t *testing.T, c *tssdk.Proc, port uint16, n int, seed int) bool {
	t.Helper()
	c.Send(map[string]any{"cmd": "echo", "port": port, "bytes": n, "seed": seed})
	ev := c.Wait("echo", tsWait)
	if ev["ok"] != true || int(ev.Num("bytes")) != n || ev.Num("port") != float64(port) {
		t.Fatalf("TS client echo on port %d: %v", port, ev)
	}
	return ev["e2e"] == true
}

// echoExact writes n pattern bytes to addr and reads exactly n back, with
// no half-close: the TS SDK's port forwarding does not pass a channel EOF
// on to the local socket, so an echo server behind a TS host never sees
// the end of its input (echoHash would wait for ever).
func echoExact(addr string, n int, seed byte) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(tsWait))
	data := make([]byte, n)
	for i := range data {
		data[i] = seed + byte(i*7)
	}
	werr := make(chan error, 1)
	go func() { _, err := c.Write(data); werr <- err }()
	got := make([]byte, n)
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if err := <-werr; err != nil {
		return err
	}
	if !bytes.Equal(got, data) {
		return fmt.Errorf("%d bytes back, content differs", n)
	}
	return nil
}

// sdkEchoWhy is sdkEcho that also reports the SDK's own error when the
// pipe fails (ConnectToForwardedPort closes it on failure).
func sdkEchoWhy(ctx context.Context, c *tunnels.Client, port uint16, msg string) error {
	mine, theirs := net.Pipe()
	defer mine.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.ConnectToForwardedPort(fctx, theirs, port) }()
	mine.SetDeadline(time.Now().Add(tsWait))
	fail := func(err error) error {
		select {
		case sdkErr := <-done:
			return fmt.Errorf("%w (SDK: %v)", err, sdkErr)
		case <-time.After(time.Second):
			return err
		}
	}
	if _, err := mine.Write([]byte(msg)); err != nil {
		return fail(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(mine, buf); err != nil {
		return fail(err)
	}
	if string(buf) != msg {
		return fmt.Errorf("echo mismatch: %q", buf)
	}
	cancel()
	<-done
	return nil
}

// TestTSSDKHost: a TS host (V2, and V1) creates its tunnel with two ports
// (and a web app's) and connects; warren's tunnel-client and the official
// Go SDK client reach both ports; web forwarding reaches the app of a V2
// host; a port the TS host adds while tunnel-client is connected becomes
// reachable through it.
func TestTSSDKHost(t *testing.T) {
	tssdk.Install(t)
	for _, v := range []string{"2", "1"} {
		t.Run("v"+v, func(t *testing.T) {
			_, relayURL := startRelay(t, "admin-k")
			dir := t.TempDir()
			tunnel := "tshost" + v
			echo1, echo2, echo3 := echoServer(t), echoServer(t), echoServer(t)
			web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "behind a TS host, path %s", r.URL.Path)
			}))
			defer web.Close()
			webPort := uint16(web.Listener.Addr().(*net.TCPAddr).Port)
			host := tssdk.Start(t, "host.js", tsEnv(relayURL, tunnel, v, echo1, echo2, webPort)...)
			if ev := host.Wait("created", tsWait); ev.Str("clusterId") != "127" {
				t.Errorf("created %v", ev)
			}
			wantProto := map[string]string{"2": "tunnel-relay-host-v2-dev", "1": "tunnel-relay-host"}[v]
			if ev := host.Wait("connected", tsWait); ev.Str("protocol") != wantProto {
				t.Fatalf("TS host connected with %v, want %s", ev, wantProto)
			}

			l1, l2, l3 := freePort(t), freePort(t), freePort(t)
			client := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY=admin-k"), "tunnel-client", "connect", tunnel,
				"--relay", relayURL, "-o", "json",
				"--port-map", fmt.Sprintf("%d:%d,%d:%d,%d:%d", echo1, l1, echo2, l2, echo3, l3))
			for i, l := range []int{l1, l2} {
				client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, l)), tsWait)
				if err := echoExact(fmt.Sprintf("127.0.0.1:%d", l), 256<<10, byte(i)); err != nil {
					t.Fatalf("tunnel-client to TS host port %d: %v", i+1, err)
				}
			}

			ctx, cancel := context.WithTimeout(context.Background(), tsWait)
			defer cancel()
			sdk := sdktest.Connect(t, ctx, relayURL, "admin-k", tunnel)
			for _, p := range []uint16{echo1, echo2} {
				if err := sdktest.WaitForwarded(ctx, sdk, p); err != nil {
					t.Fatalf("Go SDK: port %d not forwarded: %v", p, err)
				}
				// The official Go SDK client opens a port's channel as soon
				// as it has the host's tcpip-forward, racing its own reply,
				// and a TS host refuses a channel that comes before the
				// reply. V1 bytes pass the relay untouched, so only the
				// SDKs could order them: try again after that refusal.
				err := sdkEchoWhy(ctx, sdk, p, "go sdk through a TS host "+v)
				for try := 0; try < 3 && err != nil && strings.Contains(err.Error(), "Forwarding channel was not requested"); try++ {
					time.Sleep(100 * time.Millisecond)
					err = sdkEchoWhy(ctx, sdk, p, "go sdk through a TS host "+v)
				}
				if err != nil {
					t.Fatalf("Go SDK to TS host port %d: %v", p, err)
				}
			}

			// Web forwarding opens a V2 stream to the host itself, so it
			// reaches a V2 TS host; a V1 host gets the documented 502.
			r := run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k"), "relay-server", "tunnels", "token", tunnel, "--scope", "connect", "--server", relayURL)
			r.wantCode(t, 0, "tunnels token")
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/tunnels/%s/ports/%d/some/path", relayURL, tunnel, webPort), nil)
			req.Header.Set("X-Tunnel-Authorization", "tunnel "+strings.TrimSpace(r.stdout))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch {
			case v == "2" && (resp.StatusCode != 200 || string(body) != "behind a TS host, path /some/path"):
				t.Errorf("web forwarding to a TS V2 host: %d %q", resp.StatusCode, body)
			case v == "1" && resp.StatusCode != http.StatusBadGateway:
				t.Errorf("web forwarding to a TS V1 host: %d %q, want 502", resp.StatusCode, body)
			}

			host.Send(map[string]any{"cmd": "addPort", "port": echo3})
			host.Wait("portAdded", tsWait)
			client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, l3)), tsWait)
			if err := echoExact(fmt.Sprintf("127.0.0.1:%d", l3), 64<<10, 9); err != nil {
				t.Fatalf("tunnel-client to the port the TS host added: %v", err)
			}

			host.CloseInput()
			host.Wait("closed", tsWait)
		})
	}
}

// TestTSSDKClient: a TS client with default settings (E2E requested)
// reaches warren's tunnel-host in V2 (the host serves E2E) and V1, and
// echoes on both ports.
func TestTSSDKClient(t *testing.T) {
	tssdk.Install(t)
	for _, mode := range []string{"v2", "v1"} {
		t.Run(mode, func(t *testing.T) {
			_, relayURL := startRelay(t, "admin-k")
			dir := t.TempDir()
			admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
			run(t, dir, admin, "relay-server", "tunnels", "create", "wh", "--server", relayURL).wantCode(t, 0, "tunnels create")
			echo1, echo2 := echoServer(t), echoServer(t)
			hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY=admin-k", "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+dir+"/h.sock")
			start(t, dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "wh", "--mode", mode,
				"--port", strconv.Itoa(int(echo1)), "--port", strconv.Itoa(int(echo2)))
			waitHostConnected(t, dir, hostEnv, "wh")

			c := tssdk.Start(t, "client.js", tsEnv(relayURL, "wh", "", echo1, echo2)...)
			if ev := c.Wait("tunnel", tsWait); ev.Str("clusterId") != "127" || ev.Num("endpoints") != 1 {
				t.Errorf("tunnel as the TS client reads it: %v", ev)
			}
			wantProto := map[string]string{"v2": "tunnel-relay-client-v2-dev", "v1": "tunnel-relay-client"}[mode]
			if ev := c.Wait("connected", tsWait); ev.Str("protocol") != wantProto {
				t.Fatalf("TS client connected with %v, want %s", ev, wantProto)
			}
			c.Wait("forwarded", tsWait)
			c.Wait("forwarded", tsWait)
			for i, p := range []uint16{echo1, echo2} {
				e2e := tsEcho(t, c, p, 300<<10, i)
				// V2: the TS client asks for E2E by default and warren's
				// host serves it. V1 is end to end by construction (the
				// nested session), so the SDK adds no SecureStream.
				if want := mode == "v2"; e2e != want {
					t.Errorf("%s port %d: E2E stream %v, want %v", mode, p, e2e, want)
				}
			}
			c.CloseInput()
			c.Wait("closed", tsWait)
		})
	}
}

// TestTSSDKHostAndClient: a TS host and a TS client with default settings
// (V2, E2E requested and enabled by the host) through warren's relay; the
// relay carries the E2E request and the host's answer. A port the host
// adds while the client is connected reaches the client and echoes.
func TestTSSDKHostAndClient(t *testing.T) {
	tssdk.Install(t)
	_, relayURL := startRelay(t, "admin-k")
	echo1, echo2, echo3 := echoServer(t), echoServer(t), echoServer(t)
	host := tssdk.Start(t, "host.js", tsEnv(relayURL, "tsboth", "", echo1, echo2)...)
	host.Wait("created", tsWait)
	if ev := host.Wait("connected", tsWait); ev.Str("protocol") != "tunnel-relay-host-v2-dev" {
		t.Fatalf("TS host: %v", ev)
	}
	c := tssdk.Start(t, "client.js", tsEnv(relayURL, "tsboth", "", echo1, echo2)...)
	if ev := c.Wait("connected", tsWait); ev.Str("protocol") != "tunnel-relay-client-v2-dev" {
		t.Fatalf("TS client: %v", ev)
	}
	c.Wait("forwarded", tsWait)
	c.Wait("forwarded", tsWait)
	for i, p := range []uint16{echo1, echo2} {
		if !tsEcho(t, c, p, 300<<10, i) {
			t.Errorf("port %d: the stream was not end-to-end encrypted", p)
		}
	}

	host.Send(map[string]any{"cmd": "addPort", "port": echo3})
	host.Wait("portAdded", tsWait)
	c.Send(map[string]any{"cmd": "wait", "port": echo3})
	if ev := c.Wait("forwarded", tsWait); ev.Num("port") != float64(echo3) {
		t.Fatalf("forwarded %v, want port %d", ev, echo3)
	}
	if !tsEcho(t, c, echo3, 64<<10, 7) {
		t.Errorf("added port: the stream was not end-to-end encrypted")
	}

	c.CloseInput()
	c.Wait("closed", tsWait)
	host.CloseInput()
	host.Wait("closed", tsWait)
}

// TestClusterIDConfig: tunnels.cluster_id is checked (one lowercase DNS
// label; exit 2 naming the key) and, when set, is the clusterId the API
// reports instead of the public host's first label.
func TestClusterIDConfig(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_TUNNELS_CLUSTER_ID=Use.1"), "relay-server", "config", "validate")
	r.wantCode(t, 2, "bad tunnels.cluster_id")
	if !strings.Contains(r.stderr, "tunnels.cluster_id") || !strings.Contains(r.stderr, "Use.1") {
		t.Errorf("stderr: %s", r.stderr)
	}
	_, relayURL := startRelay(t, "admin-k", "--config", writeFile(t, dir, "relay.yaml", "tunnels:\n  cluster_id: use1\n"))
	resp, err := http.Get(relayURL + "/clusters/recommendations?api-version=2023-09-27-preview")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"recommendedClusterId":"use1"`) {
		t.Errorf("recommendations: %d %s", resp.StatusCode, body)
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
