package webforward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
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
