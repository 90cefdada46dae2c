package webforward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestMatchHost(t *testing.T) {
	f := &Forwarder{domain: "tunnels.example"}
	for _, tc := range []struct {
		host string
		ref  string
		port uint16
		ok   bool
	}{
		{"web1-8080.tunnels.example", "web1", 8080, true},
		{"WEB1-8080.Tunnels.Example:443", "web1", 8080, true},
		{"my-tunnel-3000.tunnels.example.", "my-tunnel", 3000, true},
		{"web1-0.tunnels.example", "", 0, false},
		{"web1-70000.tunnels.example", "", 0, false},
		{"web1.tunnels.example", "", 0, false},
		{"-80.tunnels.example", "", 0, false},
		{"a.web1-80.tunnels.example", "", 0, false},
		{"tunnels.example", "", 0, false},
		{"web1-80.other.example", "", 0, false},
		{"web1-80.xtunnels.example", "", 0, false},
		{"", "", 0, false},
	} {
		ref, port, ok := f.MatchHost(tc.host)
		if ref != tc.ref || port != tc.port || ok != tc.ok {
			t.Errorf("MatchHost(%q) = %q %d %v, want %q %d %v", tc.host, ref, port, ok, tc.ref, tc.port, tc.ok)
		}
	}
	if _, _, ok := (&Forwarder{}).MatchHost("web1-80.tunnels.example"); ok {
		t.Error("matched with no domain configured")
	}
}

func FuzzMatchHost(f *testing.F) {
	for _, s := range []string{"web1-8080.tunnels.example", "a-b-c-1.tunnels.example:80", "[::1]:80", "-.tunnels.example"} {
		f.Add(s)
	}
	fw := &Forwarder{domain: "tunnels.example"}
	f.Fuzz(func(t *testing.T, host string) {
		ref, port, ok := fw.MatchHost(host)
		if ok && (ref == "" || port == 0) {
			t.Fatalf("MatchHost(%q) = %q %d true", host, ref, port)
		}
	})
}

func TestStripCookie(t *testing.T) {
	h := http.Header{"Cookie": {"a=1; " + CookieName + "=tok; b=2", CookieName + "=x"}}
	stripCookie(h, CookieName)
	if got := h.Values("Cookie"); len(got) != 1 || got[0] != "a=1; b=2" {
		t.Fatalf("Cookie after strip: %q", got)
	}
}

func TestDialName(t *testing.T) {
	f := &Forwarder{cfg: Config{}}
	var gotID string
	var gotPort uint16
	f.cfg.Dial = func(_ context.Context, id string, port uint16, _ netip.AddrPort) (net.Conn, error) {
		gotID, gotPort = id, port
		return nil, errors.New("stop")
	}
	f.dial(context.Background(), "tcp", dialName("a-b", 8080)+":80")
	if gotID != "a-b" || gotPort != 8080 {
		t.Fatalf("dial got %q %d", gotID, gotPort)
	}
}

func TestEscapesRoot(t *testing.T) {
	for p, want := range map[string]bool{
		"/": false, "": false, "/a/b": false, "/a/../b": false, "/a/./../b/..": false,
		"/..": true, "/../x": true, "/a/../../x": true, "/./..": true, "/..\\x": true,
		"/a\\..\\..\\x": true, "/...": false, "/..a": false, "//..//": true,
	} {
		if got := escapesRoot(p); got != want {
			t.Errorf("escapesRoot(%q) = %v, want %v", p, got, want)
		}
	}
}

func TestRedirectTarget(t *testing.T) {
	for target, want := range map[string]string{
		"/page?x=2&tunnel_token=t":         "/page?x=2",
		"//evil.example/x?tunnel_token=t":  "/evil.example/x",
		"/\\evil.example/x?tunnel_token=t": "/%5Cevil.example/x",
		"/%2F/evil.example?tunnel_token=t": "/%2F/evil.example",
		"/tunnels/a/ports/1//evil?a=b":     "/tunnels/a/ports/1//evil?a=b",
		"/?tunnel_token=t":                 "/",
	} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		if got := redirectTarget(u); got != want {
			t.Errorf("redirectTarget(%q) = %q, want %q", target, got, want)
		}
	}
}

// FuzzRedirectTarget: whatever the request target, the redirect stays on
// the relay's origin.
func FuzzRedirectTarget(f *testing.F) {
	for _, s := range []string{"//evil.example/x", "/\\evil", "/%2F%2Fevil", "/a?b=c", "///\\\\x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		loc := redirectTarget(u)
		if !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			t.Fatalf("redirectTarget(%q) = %q: not a path on this origin", target, loc)
		}
		if l, err := url.Parse(loc); err != nil || l.Host != "" || l.Scheme != "" {
			t.Fatalf("redirectTarget(%q) = %q parses as %+v, %v", target, loc, l, err)
		}
	})
}

func TestRelayOwned(t *testing.T) {
	for name, want := range map[string]bool{
		"X-Forwarded-For": true, "X-Forwarded-Prefix": true, "x_forwarded_host": true, "X-Real-Ip": true,
		"X_REAL_IP": true, "Forwarded": true, "X-Tunnel-Authorization": true, "X-Forwarded": false,
		"Authorization": false, "Cookie": false, "X-Request-Id": false,
	} {
		if got := relayOwned(name); got != want {
			t.Errorf("relayOwned(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestTunnelScheme(t *testing.T) {
	for v, want := range map[string]bool{
		"Tunnel x": true, "tunnel x y": true, " TUNNEL\tx": true, "Tunnel": true,
		"Bearer x": false, "Basic abc": false, "Tunnelx y": false, "": false,
	} {
		if got := tunnelScheme(v); got != want {
			t.Errorf("tunnelScheme(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestModifyResponseDropsRelayCookie(t *testing.T) {
	resp := &http.Response{Header: http.Header{"Set-Cookie": {
		CookieName + "=x; Path=/", "app=1", " WARREN_TUNNEL_TOKEN =y", CookieName + "2=z",
	}}}
	modifyResponse(resp)
	if got := resp.Header.Values("Set-Cookie"); strings.Join(got, "|") != "app=1|"+CookieName+"2=z" {
		t.Fatalf("Set-Cookie after: %q", got)
	}
}

func TestCopyBuffers(t *testing.T) {
	var p copyBuffers
	b := p.Get()
	if len(b) != copyBufSize {
		t.Fatalf("Get: %d bytes, want %d", len(b), copyBufSize)
	}
	p.Put(b[:10]) // a resliced buffer goes back whole
	if b2 := p.Get(); len(b2) != copyBufSize {
		t.Fatalf("Get after Put: %d bytes, want %d", len(b2), copyBufSize)
	}
	p.Put(make([]byte, 100)) // not ours: dropped
	if b3 := p.Get(); len(b3) != copyBufSize {
		t.Fatalf("Get after a foreign Put: %d bytes, want %d", len(b3), copyBufSize)
	}
}
