package relayserver

import (
	"net/http"
	"testing"
)

// TestClusterHopNeedsTheSecret: the node-to-node endpoints and anything
// carrying the hop header are refused without the exact cluster secret
// (none configured: always refused), and served with it.
func TestClusterHopNeedsTheSecret(t *testing.T) {
	cfg := storeConfig(t, "adm")
	cfg.ClusterSecret = []byte("0123456789abcdef-secret")
	url, stop := serve(t, cfg)
	defer stop()
	plain, stopPlain := serve(t, storeConfig(t, "adm"))
	defer stopPlain()

	do := func(base, method, path, secret string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if secret != "" {
			req.Header.Set(HopHeader, secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	const replaced = "/internal/cluster/host-replaced/t1?since=2026-01-01T00:00:00Z"
	for _, c := range []struct {
		base, method, path, secret string
		want                       int
	}{
		{url, "POST", replaced, "", http.StatusForbidden},
		{url, "POST", replaced, "0123456789abcdef-secreT", http.StatusForbidden},
		{url, "POST", replaced, "0123456789abcdef-secret-and-more", http.StatusForbidden},
		{url, "GET", "/internal/cluster/dial/t1/80", "", http.StatusForbidden},
		{url, "GET", "/healthz", "wrong", http.StatusForbidden},
		{url, "GET", "/healthz", "", http.StatusOK},
		{url, "POST", replaced, "0123456789abcdef-secret", http.StatusNoContent},
		{url, "GET", "/internal/cluster/dial/t1/80", "0123456789abcdef-secret", http.StatusNotFound}, // no such host here
		{plain, "POST", replaced, "0123456789abcdef-secret", http.StatusForbidden},
		{plain, "POST", replaced, "", http.StatusForbidden},
	} {
		if got := do(c.base, c.method, c.path, c.secret); got != c.want {
			t.Errorf("%s %s (secret %q, clustered %v) = %d, want %d", c.method, c.path, c.secret, c.base == url, got, c.want)
		}
	}
}
