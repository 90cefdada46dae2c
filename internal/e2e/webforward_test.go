package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// webApp is the app behind the tunnel: /info answers what it received,
// /ws echoes WebSocket messages.
func webApp(t *testing.T) int {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil) // checks Origin against Host
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"path": r.URL.Path, "query": r.URL.RawQuery, "host": r.Host,
			"headers": r.Header,
		})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

type seen struct {
	Path, Query, Host string
	Headers           http.Header
}

// TestWebForwarding: HTTP and WebSocket through relay-server's web
// forwarding, by Host name and by path, with a connect token in a header,
// in a cookie set from ?tunnel_token=, and anonymously once the port
// allows it; refused without a token; a port published raw on a relay
// listen address; the URIs in the port record.
func TestWebForwarding(t *testing.T) {
	dir := t.TempDir()
	app := webApp(t)
	echo := int(echoServer(t))
	exposeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`tunnels:
  web_domain: tunnels.test
  expose:
    - listen: %s
      tunnel: web1
      port: %d
`, exposeAddr, echo)), 0o600)
	_, relayURL := startRelay(t, "admin-k", "--config", cfg)
	relayAddr := strings.TrimPrefix(relayURL, "http://")
	_, relayPort, _ := net.SplitHostPort(relayAddr)

	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	rs := func(args ...string) result {
		return run(t, dir, admin, "relay-server", append(args, "--server", relayURL)...)
	}
	r := rs("keys", "create", "--name", "web", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	rs("tunnels", "create", "web1").wantCode(t, 0, "tunnels create")
	rs("tunnels", "create", "other").wantCode(t, 0, "tunnels create other")
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h.sock"))
	host := start(t, dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "web1",
		"--port", strconv.Itoa(app)+"/http", "--port", strconv.Itoa(echo))
	waitHostConnected(t, dir, hostEnv, "web1")

	token := func(tunnel string) string {
		r := rs("tunnels", "token", tunnel, "--scope", "connect")
		r.wantCode(t, 0, "tunnels token")
		return strings.TrimSpace(r.stdout)
	}
	tok, otherTok := token("web1"), token("other")

	// Every *.tunnels.test name resolves to the relay, as wildcard DNS would.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", relayAddr)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{
		Transport: &http.Transport{DialContext: dial},
		Jar:       jar,
		Timeout:   30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	byHost := fmt.Sprintf("http://web1-%d.tunnels.test:%s", app, relayPort)
	byPath := fmt.Sprintf("%s/tunnels/web1/ports/%d", relayURL, app)

	get := func(u string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", u, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	wantApp := func(u string, header ...string) seen {
		t.Helper()
		resp, body := get(u, header...)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		var s seen
		decodeJSON(t, body, &s)
		return s
	}

	// Refused without a token, or with another tunnel's token.
	for _, u := range []string{byHost + "/info", byPath + "/info"} {
		if resp, body := get(u); resp.StatusCode != 401 || !strings.Contains(body, "connect token") {
			t.Fatalf("GET %s without a token: %d %s", u, resp.StatusCode, body)
		}
		if resp, body := get(u, "X-Tunnel-Authorization", "tunnel "+otherTok); resp.StatusCode != 403 {
			t.Fatalf("GET %s with another tunnel's token: %d %s", u, resp.StatusCode, body)
		}
	}

	// By Host, token in the header: the app sees forwarding headers, Host
	// rewritten to localhost, and not the relay's token.
	s := wantApp(byHost+"/info?a=1", "X-Tunnel-Authorization", "tunnel "+tok)
	if s.Path != "/info" || s.Query != "a=1" || s.Host != fmt.Sprintf("localhost:%d", app) {
		t.Fatalf("app saw %+v", s)
	}
	if got := s.Headers.Get("X-Forwarded-Host"); got != fmt.Sprintf("web1-%d.tunnels.test:%s", app, relayPort) {
		t.Errorf("X-Forwarded-Host %q", got)
	}
	if s.Headers.Get("X-Forwarded-Proto") != "http" || !strings.HasPrefix(s.Headers.Get("X-Forwarded-For"), "127.0.0.1") {
		t.Errorf("forwarding headers %v", s.Headers)
	}
	if s.Headers.Get("X-Tunnel-Authorization") != "" {
		t.Error("the app received the relay token")
	}

	// By path, token as Authorization: Tunnel; the prefix is stripped.
	s = wantApp(byPath+"/deep/path", "Authorization", "Tunnel "+tok)
	if s.Path != "/deep/path" || s.Headers.Get("X-Forwarded-Prefix") != fmt.Sprintf("/tunnels/web1/ports/%d", app) || s.Headers.Get("Authorization") != "" {
		t.Fatalf("app saw %+v", s)
	}

	// A query token becomes a cookie and leaves the URL.
	resp, _ := get(byHost + "/page?x=2&tunnel_token=" + url.QueryEscape(tok))
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "/page?x=2" {
		t.Fatalf("query token: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	s = wantApp(byHost + "/page?x=2")
	if s.Query != "x=2" || strings.Contains(s.Headers.Get("Cookie"), "warren_tunnel_token") {
		t.Fatalf("with the cookie, app saw %+v", s)
	}

	// WebSocket echo by Host and by path; the Origin check of the app
	// passes because Origin is rewritten like Host.
	for _, u := range []string{byHost + "/ws", byPath + "/ws"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		wsURL := "ws" + strings.TrimPrefix(u, "http")
		c, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
			HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dial}},
			HTTPHeader: http.Header{"X-Tunnel-Authorization": {"tunnel " + tok}, "Origin": {"http://browser.example"}},
		})
		if err != nil {
			cancel()
			t.Fatalf("WebSocket %s: %v", wsURL, err)
		}
		for i := 0; i < 3; i++ {
			msg := fmt.Sprintf("hello %d", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "echo: "+msg {
				t.Fatalf("WebSocket echo via %s: %q %v", u, got, err)
			}
		}
		c.Close(websocket.StatusNormalClosure, "")
		cancel()
	}

	// Anonymous access, per port, and back.
	rs("tunnels", "ports", "access", "web1", strconv.Itoa(app), "--anonymous=true").wantCode(t, 0, "ports access")
	wantApp(byPath + "/anon")
	rs("tunnels", "ports", "access", "web1", strconv.Itoa(app), "--anonymous=false").wantCode(t, 0, "ports access off")
	if resp, body := get(byPath + "/anon"); resp.StatusCode != 401 {
		t.Fatalf("after --anonymous=false: %d %s", resp.StatusCode, body)
	}

	// Raw TCP exposure of the echo port, no token.
	if err := echoHash(exposeAddr, 256<<10, 7); err != nil {
		t.Fatalf("raw TCP exposure: %v", err)
	}

	// The port records list where each port is reachable.
	r = rs("tunnels", "ports", "list", "web1", "-o", "json")
	r.wantCode(t, 0, "ports list")
	var ports struct {
		Value []struct {
			PortNumber         int      `json:"portNumber"`
			PortForwardingURIs []string `json:"portForwardingUris"`
		} `json:"value"`
	}
	decodeJSON(t, r.stdout, &ports)
	uris := map[int]string{}
	for _, p := range ports.Value {
		uris[p.PortNumber] = strings.Join(p.PortForwardingURIs, " ")
	}
	for _, want := range []string{byPath + "/", fmt.Sprintf("http://web1-%d.tunnels.test:%s/", app, relayPort)} {
		if !strings.Contains(uris[app], want) {
			t.Errorf("port %d URIs %q lack %s", app, uris[app], want)
		}
	}
	if !strings.Contains(uris[echo], "tcp://"+exposeAddr) {
		t.Errorf("port %d URIs %q lack tcp://%s", echo, uris[echo], exposeAddr)
	}

	// With the host gone: 502 naming the cause, on the web and raw.
	host.cmd.Process.Signal(syscall.SIGTERM)
	host.exitCode(t, 20*time.Second)
	if resp, body := get(byHost+"/info", "X-Tunnel-Authorization", "tunnel "+tok); resp.StatusCode != 502 || !strings.Contains(body, "no host") {
		t.Fatalf("without a host: %d %s", resp.StatusCode, body)
	}
	if err := echoHash(exposeAddr, 10, 1); err == nil {
		t.Fatal("raw exposure echoed without a host")
	}
}
