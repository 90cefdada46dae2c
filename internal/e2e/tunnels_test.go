package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTunnelsCLIAndRestart drives `relay-server tunnels` against a running
// relay, uses an issued connect token over the management API, and checks
// that tunnels and ports survive SIGKILL and a restart.
func TestTunnelsCLIAndRestart(t *testing.T) {
	dataDir := t.TempDir()
	d, url := startRelay(t, "admin-k", "--data-dir", dataDir)
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	rs := func(args ...string) result {
		t.Helper()
		return run(t, dir, env, "relay-server", append(args, "--server", url)...)
	}

	r := rs("tunnels", "create", "demo1", "--description", "test tunnel", "-o", "json")
	r.wantCode(t, 0, "tunnels create")
	var tun struct {
		TunnelID  string `json:"tunnelId"`
		ClusterID string `json:"clusterId"`
	}
	decodeJSON(t, r.stdout, &tun)
	if tun.TunnelID != "demo1" || tun.ClusterID != "127" {
		t.Fatalf("created: %s", r.stdout)
	}
	rs("tunnels", "create", "demo1").wantCode(t, 1, "create twice")
	rs("tunnels", "ports", "add", "demo1", "8080", "--protocol", "http").wantCode(t, 0, "ports add")
	rs("tunnels", "ports", "add", "demo1", "2222").wantCode(t, 0, "ports add 2")
	rs("tunnels", "ports", "add", "demo1", "70000").wantCode(t, 2, "ports add out of range")
	rs("tunnels", "ports", "remove", "demo1", "2222").wantCode(t, 0, "ports remove")
	r = rs("tunnels", "ports", "list", "demo1")
	r.wantCode(t, 0, "ports list")
	if !strings.Contains(r.stdout, "8080") || strings.Contains(r.stdout, "2222") {
		t.Fatalf("ports list:\n%s", r.stdout)
	}

	// A connect token reads this tunnel and nothing more.
	r = rs("tunnels", "token", "demo1", "--scope", "connect")
	r.wantCode(t, 0, "tunnels token")
	tok := strings.TrimSpace(r.stdout)
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token output %q is not a JWT", tok)
	}
	get := func(path, auth string) int {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/tunnels/demo1?api-version=2023-09-27-preview", "tunnel "+tok); code != 200 {
		t.Errorf("GET tunnel with its connect token: %d", code)
	}
	rs("tunnels", "create", "other").wantCode(t, 0, "create other")
	if code := get("/tunnels/other?api-version=2023-09-27-preview", "Tunnel "+tok); code != 403 {
		t.Errorf("GET another tunnel with the token: %d, want 403", code)
	}
	if code := get("/tunnels/demo1?api-version=2022-01-01", "Tunnel "+tok); code != 400 {
		t.Errorf("bad api-version: %d, want 400", code)
	}

	d.cmd.Process.Signal(syscall.SIGKILL)
	d.exitCode(t, 10*time.Second)
	// Same address: the token issuer is the relay's URL.
	_, url = startRelay(t, "admin-k", "--data-dir", dataDir, "--listen", strings.TrimPrefix(url, "http://"))

	r = rs("tunnels", "show", "demo1", "-o", "json")
	r.wantCode(t, 0, "show after restart")
	var shown struct {
		Description string `json:"description"`
		Ports       []struct {
			PortNumber int    `json:"portNumber"`
			Protocol   string `json:"protocol"`
		} `json:"ports"`
	}
	json.Unmarshal([]byte(r.stdout), &shown)
	if shown.Description != "test tunnel" || len(shown.Ports) != 1 || shown.Ports[0].PortNumber != 8080 || shown.Ports[0].Protocol != "http" {
		t.Fatalf("state after SIGKILL and restart: %s", r.stdout)
	}
	// Tokens issued before the restart still verify: signing keys persist.
	if code := get("/tunnels/demo1?api-version=2023-09-27-preview", "Tunnel "+tok); code != 200 {
		t.Errorf("old token after restart: %d", code)
	}
	r = rs("tunnels", "list")
	r.wantCode(t, 0, "list")
	if !strings.Contains(r.stdout, "demo1") || !strings.Contains(r.stdout, "other") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	rs("tunnels", "delete", "other").wantCode(t, 0, "delete")
	r = rs("tunnels", "show", "other")
	r.wantCode(t, 1, "show deleted")
	if !strings.Contains(r.stderr, "404") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
