package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/cluster"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// TestRelayOnPostgres runs the built relay-server on a real PostgreSQL
// (its DSN, password included, read from store.dsn_file): a tunnel moves
// data verified by hash, a wing registers (its id claimed in PostgreSQL),
// `relay-server cluster status` shows the node and the endpoint it holds,
// and the password appears in no output.
func TestRelayOnPostgres(t *testing.T) {
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dsnFile := filepath.Join(dir, "dsn")
	os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600)
	const adminKey = "wadm_pg_e2e"
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+adminKey, "WARREN_RELAY_SERVER_STORE_DSN_FILE="+dsnFile,
		"WARREN_RELAY_SERVER_CLUSTER_NODE_ID=node-a", "WARREN_RELAY_SERVER_CLUSTER_LEASE=3s")
	relay := start(t, dir, env, "relay-server", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir", t.TempDir())
	relayURL := relay.stderr.wait(t, listeningRE, 60*time.Second)[1]

	admin := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+adminKey)
	r := run(t, dir, admin, "relay-server", "keys", "create", "--server", relayURL, "--name", "e2e", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, admin, "relay-server", "tunnels", "create", "pgt", "--server", relayURL).wantCode(t, 0, "tunnels create")

	echo := int(echoServer(t))
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h.sock"))
	start(t, dir, hostEnv, "tunnel-host", "--relay", relayURL, "--tunnel", "pgt", "--port", strconv.Itoa(echo))
	waitHostConnected(t, dir, hostEnv, "pgt")
	local := freePort(t)
	client := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY_FILE="+keyFile), "tunnel-client", "connect", "pgt",
		"--relay", relayURL, "-o", "json", "--port-map", fmt.Sprintf("%d:%d", echo, local))
	client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, local)), 30*time.Second)
	for i := range 4 {
		if err := echoHash(fmt.Sprintf("127.0.0.1:%d", local), 256<<10, byte(i)); err != nil {
			t.Fatal(err)
		}
	}

	// A wing registers: its owner is claimed in PostgreSQL.
	r = run(t, dir, admin, "relay-server", "wings", "token", "--server", relayURL, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "mint wing token")
	wingEnv := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+strings.TrimSpace(r.stdout), "SHELL=/bin/sh")
	start(t, dir, wingEnv, "wing", "serve", "--relay", relayURL, "--wing-id", "pg-box",
		"--identity-key", filepath.Join(t.TempDir(), "id.key")).stderr.wait(t, registeredRE, 30*time.Second)

	r = run(t, dir, admin, "relay-server", "cluster", "status", "--server", relayURL, "-o", "json")
	r.wantCode(t, 0, "cluster status")
	var st cluster.Status
	decodeJSON(t, r.stdout, &st)
	if st.Self != "node-a" || len(st.Nodes) != 1 || !st.Nodes[0].Alive || st.Nodes[0].Holds.Endpoints != 1 {
		t.Errorf("cluster status = %s", r.stdout)
	}
	r = run(t, dir, admin, "relay-server", "cluster", "status", "--server", relayURL)
	r.wantCode(t, 0, "cluster status (table)")
	if !strings.Contains(r.stdout, "node-a (self)") || !strings.Contains(r.stdout, "alive") {
		t.Errorf("cluster status table:\n%s", r.stdout)
	}
	// The DSN is shown redacted, its file by path.
	r = run(t, dir, env, "relay-server", "config", "show")
	r.wantCode(t, 0, "config show")
	if !strings.Contains(r.stdout, "dsn_file: "+dsnFile) {
		t.Errorf("config show does not name the dsn file:\n%s", r.stdout)
	}

	relay.cmd.Process.Signal(syscall.SIGTERM)
	if code := relay.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("relay-server exit %d\n%s", code, relay.stderr)
	}
	for what, out := range map[string]string{"relay-server log": relay.stderr.String(), "config show": r.stdout + r.stderr} {
		if strings.Contains(out, pg.Password()) {
			t.Errorf("%s shows the database password", what)
		}
	}
}
