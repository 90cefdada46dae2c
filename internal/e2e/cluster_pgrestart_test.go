package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/needtool"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// TestClusterSurvivesPostgresRestart: two relay nodes on one PostgreSQL
// behind HAProxy, two tunnels' hosts and a wing on node A, a tunnel-client
// on A and one on B (B carries its relay socket to A over the hop). PostgreSQL stops for longer than the lease:
// both nodes answer /readyz 503, yet data keeps flowing through the
// connections open before the outage and through new connections of the
// clients already connected. PostgreSQL comes back: both nodes are ready
// again by themselves, none thinks it lost its lease (so no host or wing
// was dropped: the wing, still on its first connection, is attached
// through B), the old connections still flow, and a new tunnel, host and
// clients work across the nodes. Meanwhile API calls fail with a 503.
func TestClusterSurvivesPostgresRestart(t *testing.T) {
	haproxy := needtool.Path(t, "haproxy", "apt-get install haproxy")
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l := &clusterLab{dir: t.TempDir(), echoPort: int(echoServer(t)), haproxy: haproxy}
	dir := l.dir
	dsnFile := filepath.Join(dir, "dsn")
	os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600)
	secretFile := filepath.Join(dir, "cluster.secret")
	os.WriteFile(secretFile, []byte("e2e-cluster-secret-0123456789abcdef\n"), 0o600)
	const lease = 3 * time.Second
	lbPort := freePort(t)
	l.lbURL = fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	l.env = []string{"WARREN_RELAY_SERVER_ADMIN_KEY=" + clusterAdminKey, "WARREN_RELAY_SERVER_STORE_DSN_FILE=" + dsnFile,
		"WARREN_RELAY_SERVER_CLUSTER_SECRET_FILE=" + secretFile, "WARREN_RELAY_SERVER_CLUSTER_LEASE=" + lease.String(),
		"WARREN_RELAY_SERVER_PUBLIC_URL=" + l.lbURL}
	l.admin = cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+clusterAdminKey)
	for _, id := range []string{"node-a", "node-b"} {
		port := freePort(t)
		n := &labNode{id: id, url: fmt.Sprintf("http://127.0.0.1:%d", port), expose: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		l.nodes = append(l.nodes, n)
		l.startNode(t, n)
	}
	a, b := l.nodes[0], l.nodes[1]
	// Hosts and clients reach the relay at its public URL, the load
	// balancer; it places them deterministically: the client sockets of
	// tunnels "pgb" and "pgc" on node B, everything else (API calls go to
	// the node given by --relay) on node A. So every host is on A, pga's
	// clients are on their host's node and pgb's and pgc's are carried
	// over the hop.
	startPathLB(t, l, lbPort, "/relay/client/pgb /relay/client/pgc", b, a)

	r := run(t, dir, l.admin, "relay-server", "keys", "create", "--server", a.url, "--name", "e2e", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	hostOn := func(via *labNode, tunnel string) {
		t.Helper()
		run(t, dir, l.admin, "relay-server", "tunnels", "create", tunnel, "--server", via.url).wantCode(t, 0, "tunnels create "+tunnel)
		env := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, tunnel+".sock"))
		start(t, dir, env, "tunnel-host", "--relay", via.url, "--tunnel", tunnel, "--port", strconv.Itoa(l.echoPort), "--log-format", "json")
		waitHostConnected(t, dir, env, tunnel)
	}
	hostOn(a, "pga")
	hostOn(b, "pgb")
	waitUntil(t, 15*time.Second, "node-a holding both hosts", func() bool {
		for _, n := range l.status(t, b.url).Nodes {
			if n.ID == a.id {
				return n.Holds.Endpoints == 2
			}
		}
		return false
	})

	// A wing on node A, connected to it directly.
	r = run(t, dir, l.admin, "relay-server", "wings", "token", "--server", a.url, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "wing token")
	wing := start(t, dir, cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+strings.TrimSpace(r.stdout), "SHELL=/bin/sh"),
		"wing", "serve", "--relay", a.url, "--wing-id", "pgbox", "--identity-key", filepath.Join(t.TempDir(), "id.key"))
	wing.stderr.wait(t, registeredRE, 30*time.Second)

	clientOf := func(via *labNode, tunnel string) string {
		t.Helper()
		local := freePort(t)
		c := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY_FILE="+keyFile), "tunnel-client", "connect", tunnel,
			"--relay", via.url, "-o", "json", "--port-map", fmt.Sprintf("%d:%d", l.echoPort, local))
		c.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, local)), 30*time.Second)
		addr := fmt.Sprintf("127.0.0.1:%d", local)
		if err := echoHash(addr, 256<<10, 1); err != nil {
			t.Fatalf("tunnel-client of %s (API via %s): %v", tunnel, via.id, err)
		}
		return addr
	}
	hopsBefore := metric(t, b.url, `warren_cluster_hops_total{kind="tunnel_client"}`)
	same, cross := clientOf(a, "pga"), clientOf(b, "pgb")
	if metric(t, b.url, `warren_cluster_hops_total{kind="tunnel_client"}`) != hopsBefore+1 {
		t.Fatal("node-b did not carry exactly the one client of pgb to node-a")
	}
	addrs := []string{same, cross}
	names := []string{"same-node client", "cross-node client"}

	// A steady stream through each client on one connection each, opened
	// before the outage and kept through it.
	streams := []*echoStream{openEchoStream(t, same), openEchoStream(t, cross)}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for _, n := range l.nodes {
		waitUntil(t, 2*lease, n.id+" not ready", func() bool { return readyz(n.url) == http.StatusServiceUnavailable })
	}
	// Past the lease: the nodes' records have expired in the (stopped)
	// database; they must not count as lost for that. New connections
	// through the connected clients open channels on their relay sockets.
	for time.Since(stopped) < 2*lease {
		for i, addr := range addrs {
			if err := echoHash(addr, 128<<10, byte(10+i)); err != nil {
				t.Fatalf("new connection through the %s during the outage: %v", names[i], err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	// What needs the store fails, promptly and saying so, without
	// hanging the node.
	for _, n := range l.nodes {
		r := run(t, dir, l.admin, "relay-server", "tunnels", "list", "--server", n.url)
		if r.code == 0 || !strings.Contains(r.stderr, "503") {
			t.Fatalf("tunnels list via %s with PostgreSQL down: exit %d, %q %q; want a 503", n.id, r.code, r.stdout, r.stderr)
		}
		t.Logf("tunnels list via %s during the outage: exit %d: %s", n.id, r.code, strings.TrimSpace(r.stderr))
		r = run(t, dir, l.admin, "relay-server", "keys", "list", "--server", n.url)
		if r.code == 0 || !strings.Contains(r.stderr, "503") {
			t.Fatalf("keys list via %s with PostgreSQL down: exit %d, %q %q; want a 503", n.id, r.code, r.stdout, r.stderr)
		}
	}
	for i, s := range streams {
		if s.roundsSince(stopped) == 0 {
			t.Fatalf("no data through the stream of the %s during the outage (err %v)", names[i], s.error())
		}
	}
	for _, n := range l.nodes {
		if code := readyz(n.url); code != http.StatusServiceUnavailable {
			t.Fatalf("%s /readyz = %d during the outage", n.id, code)
		}
	}

	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted := time.Now()
	for _, n := range l.nodes {
		waitUntil(t, 30*time.Second, n.id+" ready again", func() bool { return readyz(n.url) == http.StatusOK })
	}
	t.Logf("nodes ready %s after PostgreSQL came back", time.Since(restarted).Round(100*time.Millisecond))
	// Two leases more: a node that reaped the other or dropped its hosts
	// would have done it by now.
	time.Sleep(2 * lease)
	for i, s := range streams {
		if s.roundsSince(restarted) == 0 {
			t.Fatalf("the stream of the %s stopped (err %v)", names[i], s.error())
		}
		s.close(t)
	}
	for _, n := range l.nodes {
		if v := metric(t, n.url, "warren_cluster_lease_lost_total"); v != 0 {
			t.Errorf("%s lost its lease %v times over a PostgreSQL restart", n.id, v)
		}
		if v := metric(t, n.url, "warren_cluster_nodes_reaped_total"); v != 0 {
			t.Errorf("%s reaped %v nodes over a PostgreSQL restart", n.id, v)
		}
		if v := metric(t, n.url, "warren_cluster_store_up"); v != 1 {
			t.Errorf("%s warren_cluster_store_up = %v", n.id, v)
		}
	}
	st := l.status(t, b.url)
	if len(st.Nodes) != 2 {
		t.Fatalf("cluster status after the restart: %+v", st)
	}
	for _, n := range st.Nodes {
		if !n.Alive || (n.ID == a.id && n.Holds.Endpoints != 2) {
			t.Fatalf("cluster status after the restart: %+v", n)
		}
	}

	// The wing never left node A; it is attached through node B.
	r = run(t, dir, l.admin, "relay-server", "wings", "token", "--server", b.url, "--kind", "user", "--user", "alice")
	r.wantCode(t, 0, "user token")
	r = run(t, t.TempDir(), userEnvOf(t, strings.TrimSpace(r.stdout)), "wing", "attach", "--relay", b.url, "--command", "echo ran-$((6*7))", "pgbox")
	if r.code != 0 || !strings.Contains(r.stdout, "ran-42") {
		t.Fatalf("wing attach via node-b after the restart: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if n := len(registeredRE.FindAllString(wing.stderr.String(), -1)); n != 1 {
		t.Fatalf("the wing registered %d times; it should have stayed connected:\n%s", n, wing.stderr)
	}

	// New clients of the old tunnels, and a new tunnel and host.
	for i, addr := range []string{clientOf(b, "pga"), clientOf(a, "pgb")} {
		if err := echoHash(addr, 512<<10, byte(20+i)); err != nil {
			t.Fatal(err)
		}
	}
	hostOn(b, "pgc")
	if err := echoHash(clientOf(b, "pgc"), 512<<10, 30); err != nil {
		t.Fatal(err)
	}
}

// startPathLB runs HAProxy on port: requests whose path starts with one
// of prefixes (space-separated) go to node to, all others to node def (no health checks: placement must
// not change while the nodes are not ready).
func startPathLB(t *testing.T, l *clusterLab, port int, prefixes string, to, def *labNode) {
	t.Helper()
	cfg := filepath.Join(l.dir, "path-lb.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 10s
frontend relay
    bind 127.0.0.1:%d
    use_backend to if { path_beg %s }
    default_backend def
backend to
    server %s %s
backend def
    server %s %s
`, port, prefixes, to.id, strings.TrimPrefix(to.url, "http://"), def.id, strings.TrimPrefix(def.url, "http://"))), 0o600)
	start(t, l.dir, cleanEnv(t), l.haproxy, "-f", cfg, "-db")
	waitUntil(t, 30*time.Second, "haproxy serving", func() bool { return readyz(l.lbURL) == http.StatusOK })
}

func readyz(u string) int {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u + "/readyz")
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// echoStream sends 16 KiB every 50 ms on one connection to an echo app
// and checks each echo, until closed or the first error.
type echoStream struct {
	c    net.Conn
	mu   sync.Mutex
	err  error
	last atomic.Int64 // UnixNano of the last verified round
	n    atomic.Int64
	done chan struct{}
}

func openEchoStream(t *testing.T, addr string) *echoStream {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := &echoStream{c: c, done: make(chan struct{})}
	go s.run()
	t.Cleanup(func() { c.Close(); <-s.done })
	waitUntil(t, 10*time.Second, "the first echo on "+addr, func() bool { return s.n.Load() > 0 || s.error() != nil })
	if err := s.error(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *echoStream) run() {
	defer close(s.done)
	out, in := make([]byte, 16<<10), make([]byte, 16<<10)
	for i := 0; ; i++ {
		for j := range out {
			out[j] = byte(i + j*13)
		}
		s.c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := s.c.Write(out); err != nil {
			s.fail(err)
			return
		}
		if _, err := io.ReadFull(s.c, in); err != nil {
			s.fail(err)
			return
		}
		if !bytes.Equal(in, out) {
			s.fail(fmt.Errorf("round %d: echo differs", i))
			return
		}
		s.n.Add(1)
		s.last.Store(time.Now().UnixNano())
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *echoStream) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *echoStream) error() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// roundsSince is nonzero when a round was verified after t and the stream
// has not failed.
func (s *echoStream) roundsSince(t time.Time) int64 {
	if s.error() != nil || s.last.Load() <= t.UnixNano() {
		return 0
	}
	return s.n.Load()
}

func (s *echoStream) close(t *testing.T) {
	t.Helper()
	if err := s.error(); err != nil {
		t.Fatal(err)
	}
	s.c.Close()
	<-s.done
}
