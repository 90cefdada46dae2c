package e2e

import (
	"bufio"
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
	mux.HandleFunc("/setcookie", func(w http.ResponseWriter, r *http.Request) {
		// An app (maybe another tunnel's, sharing the relay's origin in
		// the path form) tries to overwrite the relay's token cookie.
		w.Header().Add("Set-Cookie", "warren_tunnel_token=planted; Path=/")
		w.Header().Add("Set-Cookie", "app=1; Path=/")
		w.Header().Add("Set-Cookie", " Warren_Tunnel_Token =planted2")
		io.WriteString(w, "ok")
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

	webForwardHardening(t, hc, relayAddr, byHost, byPath, tok)

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

// webForwardHardening checks what a client cannot make web forwarding do
// (issue 13): redirect off the relay's origin, feed the app forwarding
// headers, leak the relay's token to the app, let the app set the relay's
// cookie, or reach above the app's root with encoded dot segments.
func webForwardHardening(t *testing.T, hc *http.Client, relayAddr, byHost, byPath, tok string) {
	hostName := strings.TrimPrefix(byHost, "http://")
	do := func(req *http.Request) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", req.Method, req.URL, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// raw sends a request line as written, which net/http would not.
	raw := func(host, target string) *http.Response {
		t.Helper()
		c, err := net.DialTimeout("tcp", relayAddr, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", target, host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	sameOrigin := func(loc string) bool {
		return strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, "/\\")
	}

	// The query-token redirect names a path on this origin, never
	// //host or /\host, which browsers read as another origin.
	q := "?tunnel_token=" + url.QueryEscape(tok)
	prefix := strings.TrimPrefix(byPath, "http://"+relayAddr)
	for _, tc := range []struct{ host, target string }{
		{hostName, "//evil.example/x" + q},
		{hostName, "///evil.example/x" + q},
		{hostName, "/\\evil.example/x" + q},
		{hostName, "/\\/evil.example/x" + q},
		{relayAddr, prefix + "//evil.example/x" + q},
	} {
		resp := raw(tc.host, tc.target)
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusTemporaryRedirect || !sameOrigin(loc) || !strings.Contains(loc, "evil.example/x") {
			t.Errorf("GET %s (Host %s): %d, Location %q: want a 307 to a path on the relay's origin", tc.target, tc.host, resp.StatusCode, loc)
		}
	}

	// Forwarding headers are the relay's; every token-bearing value goes.
	req, _ := http.NewRequest("GET", byHost+"/info", nil)
	for k, v := range map[string]string{
		"X-Real-IP": "6.6.6.6", "X-Forwarded-For": "6.6.6.6", "X-Forwarded-Prefix": "/evil",
		"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https", "X-Forwarded-Port": "1",
		"Forwarded": "for=6.6.6.6",
	} {
		req.Header.Set(k, v)
	}
	req.Header.Add("Authorization", "Basic YXBwOnNlY3JldA==") // the app's own
	req.Header.Add("Authorization", "tunnel "+tok)
	req.Header.Add("Authorization", "Tunnel "+tok)
	req.Header.Add("X-Tunnel-Authorization", "tunnel "+tok)
	req.Header.Add("X-Tunnel-Authorization", tok)
	req.Header.Add("Cookie", "a=1; warren_tunnel_token="+tok+"; b=2")
	req.Header.Add("Cookie", "warren_tunnel_token="+tok)
	resp, body := do(req)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /info with relay headers: %d %s", resp.StatusCode, body)
	}
	var s seen
	decodeJSON(t, body, &s)
	for k, v := range s.Headers {
		for _, x := range v {
			if strings.Contains(x, tok) {
				t.Errorf("the app received the relay token in %s", k)
			}
		}
	}
	want := map[string][]string{
		"X-Real-Ip": {"127.0.0.1"}, "X-Forwarded-For": {"127.0.0.1"}, "X-Forwarded-Prefix": nil,
		"X-Forwarded-Host": {hostName}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Port": nil,
		"Forwarded": nil, "Authorization": {"Basic YXBwOnNlY3JldA=="}, "X-Tunnel-Authorization": nil,
		"Cookie": {"a=1; b=2"},
	}
	for k, w := range want {
		if got := s.Headers[k]; strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("app saw %s %q, want %q", k, got, w)
		}
	}
	// In the path form the prefix is the relay's, whatever the client says.
	req, _ = http.NewRequest("GET", byPath+"/info", nil)
	req.Header.Set("Authorization", "Tunnel "+tok)
	req.Header.Set("X-Forwarded-Prefix", "/evil")
	_, body = do(req)
	decodeJSON(t, body, &s)
	if got := s.Headers["X-Forwarded-Prefix"]; len(got) != 1 || got[0] != prefix {
		t.Errorf("path form: app saw X-Forwarded-Prefix %q, want %q", got, prefix)
	}

	// The app cannot set the relay's cookie; its own cookies pass.
	for _, u := range []string{byPath + "/setcookie", byHost + "/setcookie"} {
		req, _ = http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Tunnel "+tok)
		resp, _ = do(req)
		if got := resp.Header.Values("Set-Cookie"); resp.StatusCode != 200 || len(got) != 1 || got[0] != "app=1; Path=/" {
			t.Errorf("GET %s: %d, Set-Cookie %q: want only the app's own cookie", u, resp.StatusCode, got)
		}
	}

	// Dot segments, encoded or not, may not climb above the app's root.
	for _, u := range []string{
		byHost + "/%2e%2e/%2e%2e/etc/passwd", byHost + "/..%2f..%2fetc/passwd",
		byHost + "/a/%2E%2E/%2e%2e/%2e%2e/x", byHost + "/..%5c..%5cwin.ini", byHost + "/../x",
		byPath + "/%2e%2e/%2e%2e/x", byPath + "/..%2f..%2fx",
	} {
		req, _ = http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Tunnel "+tok)
		resp, body = do(req)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Warren-Error") != "web-forwarding" {
			t.Errorf("GET %s: %d %q, want the relay's 400", u, resp.StatusCode, body)
		}
	}
	// Inside the root they pass on unchanged, for the app to resolve.
	req, _ = http.NewRequest("GET", byHost+"/a/%2e%2e/info", nil)
	req.Header.Set("Authorization", "Tunnel "+tok)
	if resp, body = do(req); resp.Header.Get("X-Warren-Error") != "" {
		t.Errorf("GET /a/%%2e%%2e/info: %d %q, want it forwarded", resp.StatusCode, body)
	}
}
