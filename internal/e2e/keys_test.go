package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKeysAndRestart: API keys made with the CLI work for minting, can be
// revoked, and survive relay-server being killed with SIGKILL.
func TestKeysAndRestart(t *testing.T) {
	dataDir := t.TempDir()
	d, url := startRelay(t, "admin-k", "--data-dir", dataDir)
	dir := t.TempDir()
	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")

	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", url, "--name", "ci", "--scope", "tickets", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ ID, Key string }
	decodeJSON(t, r.stdout, &k)
	r = run(t, dir, admin, "relay-server", "keys", "create", "--server", url, "--name", "ops", "--scope", "tunnels")
	r.wantCode(t, 0, "keys create text")
	if !strings.Contains(r.stdout, "key:    wrn_") || !strings.Contains(r.stderr, "shown only now") {
		t.Fatalf("keys create text output:\n%s\n%s", r.stdout, r.stderr)
	}
	// The API key mints tickets with the same CLI, given as the key to use.
	asKey := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+k.Key)
	mint := []string{"tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b"}
	run(t, dir, asKey, "relay-server", mint...).wantCode(t, 0, "mint with an API key")

	// SIGKILL: no chance to flush anything. The key must still be there.
	d.cmd.Process.Signal(syscall.SIGKILL)
	d.exitCode(t, 10*time.Second)
	_, url = startRelay(t, "admin-k", "--data-dir", dataDir)
	mint = []string{"tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b"}
	run(t, dir, asKey, "relay-server", mint...).wantCode(t, 0, "mint with an API key after SIGKILL and restart")
	r = run(t, dir, admin, "relay-server", "keys", "list", "--server", url)
	r.wantCode(t, 0, "keys list")
	if !strings.Contains(r.stdout, k.ID) || !strings.Contains(r.stdout, "ops") || strings.Contains(r.stdout, k.Key) {
		t.Fatalf("keys list after restart:\n%s", r.stdout)
	}

	run(t, dir, admin, "relay-server", "keys", "revoke", "--server", url, k.ID).wantCode(t, 0, "keys revoke")
	r = run(t, dir, asKey, "relay-server", mint...)
	r.wantCode(t, 1, "mint with a revoked key")
	if !strings.Contains(r.stderr, "401") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, asKey, "relay-server", "keys", "list", "--server", url)
	r.wantCode(t, 1, "keys list with a non-admin key")
	r = run(t, dir, admin, "relay-server", "keys", "rotate-signing", "--server", url)
	r.wantCode(t, 0, "rotate-signing")
	r = run(t, dir, admin, "relay-server", "keys", "create", "--server", url, "--name", "x", "--scope", "root")
	r.wantCode(t, 1, "bad scope")
	if !strings.Contains(r.stderr, "400") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
