package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/cluster"
	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/needtool"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// clusterLab is three relay-server nodes on one PostgreSQL behind HAProxy,
// all on loopback, as scripts/cluster-demo.sh runs them.
type clusterLab struct {
	dir      string
	env      []string // relay-server environment shared by the nodes
	admin    []string // admin CLI environment
	lbURL    string
	haproxy  string
	nodes    []*labNode
	echoPort int // a TCP echo app every node exposes raw (tunnel "c1")
}

type labNode struct {
	id, url, expose string
	d               *daemon
}

const clusterAdminKey = "wadm_cluster_e2e"

func startClusterLab(t *testing.T) *clusterLab {
	t.Helper()
	haproxy := needtool.Path(t, "haproxy", "apt-get install haproxy")
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l := &clusterLab{dir: t.TempDir(), echoPort: int(echoServer(t))}
	dsnFile := filepath.Join(l.dir, "dsn")
	os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600)
	secretFile := filepath.Join(l.dir, "cluster.secret")
	os.WriteFile(secretFile, []byte("e2e-cluster-secret-0123456789abcdef\n"), 0o600)
	lbPort := freePort(t)
	l.lbURL = fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	l.env = []string{"WARREN_RELAY_SERVER_ADMIN_KEY=" + clusterAdminKey, "WARREN_RELAY_SERVER_STORE_DSN_FILE=" + dsnFile,
		"WARREN_RELAY_SERVER_CLUSTER_SECRET_FILE=" + secretFile, "WARREN_RELAY_SERVER_CLUSTER_LEASE=3s",
		"WARREN_RELAY_SERVER_PUBLIC_URL=" + l.lbURL}
	l.admin = cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+clusterAdminKey)

	var servers strings.Builder
	for _, id := range []string{"node-a", "node-b", "node-c"} {
		port := freePort(t)
		n := &labNode{id: id, url: fmt.Sprintf("http://127.0.0.1:%d", port), expose: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		l.nodes = append(l.nodes, n)
		fmt.Fprintf(&servers, "    server %s 127.0.0.1:%d check\n", id, port)
		l.startNode(t, n)
	}
	l.haproxy = haproxy
	l.startLB(t, haproxy, lbPort, "relay", servers.String())
	return l
}

// startLB runs HAProxy on port in front of servers (its "server" lines).
// WebSockets pass through (timeout tunnel), a dead node leaves rotation
// after two failed /readyz checks, and a connection refused by one is
// tried on another.
func (l *clusterLab) startLB(t *testing.T, haproxy string, port int, name, servers string) string {
	t.Helper()
	cfg := filepath.Join(l.dir, name+".cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
    maxconn 2000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
    timeout http-request 10s
    retries 3
    option redispatch
frontend relay
    bind 127.0.0.1:%d
    default_backend relays
backend relays
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
%s`, port, servers)), 0o600)
	start(t, l.dir, cleanEnv(t), haproxy, "-f", cfg, "-db")
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return u
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy not serving at %s: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (l *clusterLab) startNode(t *testing.T, n *labNode) {
	t.Helper()
	cfg := filepath.Join(l.dir, n.id+".yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`tunnels:
  expose:
    - listen: %s
      tunnel: c1
      port: %d
`, n.expose, l.echoPort)), 0o600)
	env := cleanEnv(t, append(append([]string{}, l.env...), "WARREN_RELAY_SERVER_CLUSTER_NODE_ID="+n.id,
		"WARREN_RELAY_SERVER_CLUSTER_INTERNAL_URL="+n.url, "WARREN_RELAY_SERVER_CLUSTER_PUBLIC_URL="+n.url)...)
	n.d = start(t, l.dir, env, "relay-server", "--config", cfg, "--listen", strings.TrimPrefix(n.url, "http://"),
		"--log-format", "json", "--log-level", "debug", "--data-dir", t.TempDir())
	n.d.stderr.wait(t, listeningRE, 60*time.Second)
}

func (l *clusterLab) status(t *testing.T, via string) cluster.Status {
	t.Helper()
	r := run(t, l.dir, l.admin, "relay-server", "cluster", "status", "--server", via, "-o", "json")
	r.wantCode(t, 0, "cluster status")
	var st cluster.Status
	decodeJSON(t, r.stdout, &st)
	return st
}

// holder returns the node holding n endpoints / wings per the status.
func (l *clusterLab) holder(t *testing.T, via string, wings bool) string {
	t.Helper()
	for _, n := range l.status(t, via).Nodes {
		if n.Alive && ((!wings && n.Holds.Endpoints > 0) || (wings && n.Holds.Wings > 0)) {
			return n.ID
		}
	}
	return ""
}

func (l *clusterLab) node(id string) *labNode {
	for _, n := range l.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// metric reads one counter of a node's /metrics.
func metric(t *testing.T, nodeURL, series string) float64 {
	t.Helper()
	resp, err := http.Get(nodeURL + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func (l *clusterLab) hops(t *testing.T, except, kind string) float64 {
	var sum float64
	for _, n := range l.nodes {
		if n.id != except {
			sum += metric(t, n.url, `warren_cluster_hops_total{kind="`+kind+`"}`)
		}
	}
	return sum
}

// TestClusterBehindHAProxy: three relay nodes on one PostgreSQL behind
// HAProxy. A tunnel's host lands on one node; tunnel-client and the Go SDK
// client reaching the others move data verified by hash through the
// node-to-node hop; web forwarding and the raw TCP exposure work from every
// node; a wing on one node is attached through another; a ticket PUT on
// one node pairs with its GET on another, and a killed PUT fails the GET.
// Then the host's node is killed -9: the host and the wing are back on a
// live node within 15 s, new clients work, and cluster status shows the
// dead node holding nothing.
func TestClusterBehindHAProxy(t *testing.T) {
	l := startClusterLab(t)
	dir := l.dir
	r := run(t, dir, l.admin, "relay-server", "keys", "create", "--server", l.lbURL, "--name", "e2e", "--scope", "tunnels", "-o", "json")
	r.wantCode(t, 0, "keys create")
	var k struct{ Key string }
	decodeJSON(t, r.stdout, &k)
	run(t, dir, l.admin, "relay-server", "tunnels", "create", "c1", "--server", l.lbURL).wantCode(t, 0, "tunnels create")
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte(k.Key), 0o600)
	app := webApp(t)

	// The host, through the load balancer: it lands where HAProxy sends it.
	hostEnv := cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY_FILE="+keyFile, "WARREN_TUNNEL_HOST_CONTROL_SOCKET="+filepath.Join(dir, "h.sock"))
	host := start(t, dir, hostEnv, "tunnel-host", "--relay", l.lbURL, "--tunnel", "c1",
		"--port", strconv.Itoa(l.echoPort), "--port", strconv.Itoa(app)+"/http", "--log-format", "json")
	waitHostConnected(t, dir, hostEnv, "c1")
	var owner string
	waitUntil(t, 15*time.Second, "the host's node in cluster status", func() bool {
		owner = l.holder(t, l.lbURL, false)
		return owner != ""
	})
	t.Logf("host on %s", owner)

	// tunnel-client through the load balancer until one was carried by
	// another node (round robin makes that the second try at the latest).
	for i := 0; ; i++ {
		before := l.hops(t, owner, "tunnel_client")
		local := freePort(t)
		client := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY_FILE="+keyFile), "tunnel-client", "connect", "c1",
			"--relay", l.lbURL, "-o", "json", "--port-map", fmt.Sprintf("%d:%d", l.echoPort, local))
		client.stdout.wait(t, regexpOf(fmt.Sprintf(`"event":"ready".*"local_port":%d`, local)), 30*time.Second)
		for j := range 3 {
			if err := echoHash(fmt.Sprintf("127.0.0.1:%d", local), 512<<10, byte(i*8+j)); err != nil {
				t.Fatalf("tunnel-client %d: %v", i, err)
			}
		}
		client.cmd.Process.Signal(syscall.SIGTERM)
		client.exitCode(t, 30*time.Second)
		if l.hops(t, owner, "tunnel_client") > before {
			break
		}
		if i == 5 {
			t.Fatal("no tunnel-client relay socket was carried from another node in 6 tries")
		}
	}

	// The Go SDK client on each other node directly.
	for _, n := range l.nodes {
		if n.id != owner {
			sdkThrough(t, n.url, l.lbURL, k.Key, "c1", l.echoPort)
		}
	}

	// Web forwarding by path and the raw exposure, from every node.
	tok := strings.TrimSpace(run(t, dir, l.admin, "relay-server", "tunnels", "token", "c1", "--scope", "connect", "--server", l.lbURL).stdout)
	for _, n := range l.nodes {
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/tunnels/c1/ports/%d/deep", n.url, app), nil)
		req.Header.Set("Authorization", "Tunnel "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("web forwarding via %s: %v", n.id, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), `"/deep"`) {
			t.Fatalf("web forwarding via %s: %d %s", n.id, resp.StatusCode, body)
		}
		if err := echoHash(n.expose, 256<<10, 7); err != nil {
			t.Fatalf("raw exposure on %s: %v", n.id, err)
		}
	}

	// A wing registered at the host's node, attached through another.
	ownerNode := l.node(owner)
	var other *labNode
	for _, n := range l.nodes {
		if n.id != owner {
			other = n
			break
		}
	}
	r = run(t, dir, l.admin, "relay-server", "wings", "token", "--server", l.lbURL, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "wing token")
	wingEnv := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+strings.TrimSpace(r.stdout), "SHELL=/bin/sh")
	// The wing goes through a load balancer too, so that it comes back
	// through it: one that prefers the host's node and falls back to the
	// others (HAProxy backup servers) once it is dead.
	var pinned strings.Builder
	for _, n := range l.nodes {
		backup := " backup"
		if n.id == owner {
			backup = ""
		}
		fmt.Fprintf(&pinned, "    server %s %s check%s\n", n.id, strings.TrimPrefix(n.url, "http://"), backup)
	}
	wingLB := l.startLB(t, l.haproxy, freePort(t), "wing-lb", pinned.String())
	wing := start(t, dir, wingEnv, "wing", "serve", "--relay", wingLB, "--wing-id", "cbox",
		"--identity-key", filepath.Join(t.TempDir(), "id.key"))
	wing.stderr.wait(t, registeredRE, 30*time.Second)
	waitUntil(t, 15*time.Second, "the wing on the host's node", func() bool { return l.holder(t, l.lbURL, true) == owner })
	r = run(t, dir, l.admin, "relay-server", "wings", "token", "--server", l.lbURL, "--kind", "user", "--user", "alice")
	r.wantCode(t, 0, "user token")
	userEnv := userEnvOf(t, strings.TrimSpace(r.stdout))
	attach := func(via string) {
		t.Helper()
		r := run(t, t.TempDir(), userEnv, "wing", "attach", "--relay", via, "--command", "echo ran-$((6*7))", "cbox")
		if r.code != 0 || !strings.Contains(r.stdout, "ran-42") {
			t.Fatalf("wing attach via %s: exit %d, %q %q", via, r.code, r.stdout, r.stderr)
		}
	}
	beforeWing := metric(t, other.url, `warren_cluster_hops_total{kind="wing_user"}`)
	attach(other.url)
	if metric(t, other.url, `warren_cluster_hops_total{kind="wing_user"}`) <= beforeWing {
		t.Fatalf("wing attach through %s was not carried to %s", other.id, owner)
	}

	// A ticket: PUT at the owner node, GET at another; then a PUT killed
	// mid-stream fails the GET.
	clusterTicket(t, l, ownerNode.url, other.url, false)
	clusterTicket(t, l, ownerNode.url, other.url, true)

	// kill -9 of the host's node, under load: a client is moving data.
	local := freePort(t)
	client := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY_FILE="+keyFile), "tunnel-client", "connect", "c1",
		"--relay", l.lbURL, "-o", "json", "--port-map", fmt.Sprintf("%d:%d", l.echoPort, local))
	client.stdout.wait(t, regexpOf(`"event":"ready"`), 30*time.Second)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		for i := 0; loadCtx.Err() == nil; i++ {
			_ = echoHash(fmt.Sprintf("127.0.0.1:%d", local), 64<<10, byte(i))
		}
	}()
	killed := time.Now()
	ownerNode.d.cmd.Process.Signal(syscall.SIGKILL)
	ownerNode.d.exitCode(t, 10*time.Second)
	var survivor *labNode = other
	var newOwner string
	waitUntil(t, 15*time.Second, "the host back on a live node", func() bool {
		newOwner = l.holder(t, survivor.url, false)
		return newOwner != "" && newOwner != owner
	})
	waitUntil(t, 15*time.Second-time.Since(killed)+time.Second, "the wing back on a live node", func() bool {
		w := l.holder(t, survivor.url, true)
		return w != "" && w != owner
	})
	t.Logf("host and wing back after %s (host on %s)", time.Since(killed).Round(100*time.Millisecond), newOwner)
	stopLoad()
	<-loadDone
	client.cmd.Process.Signal(syscall.SIGTERM)
	client.exitCode(t, 30*time.Second)

	// New clients work, through any node.
	for _, n := range l.nodes {
		if n.id != owner {
			sdkThrough(t, n.url, l.lbURL, k.Key, "c1", l.echoPort)
		}
	}
	attach(l.lbURL)
	st := l.status(t, survivor.url)
	for _, n := range st.Nodes {
		if n.ID == owner && (n.Alive || n.Holds != (store.Holdings{})) {
			t.Fatalf("dead node in cluster status: %+v", n)
		}
	}
	waitUntil(t, 15*time.Second, "the dead node reaped", func() bool {
		for _, n := range l.status(t, survivor.url).Nodes {
			if n.ID == owner {
				return false
			}
		}
		return true
	})
	_ = host
}

// clusterTicket mints a ticket, PUTs at putURL and GETs at getURL; with
// kill, the upload is cut halfway and the download must fail.
func clusterTicket(t *testing.T, l *clusterLab, putURL, getURL string, kill bool) {
	t.Helper()
	r := run(t, l.dir, l.admin, "relay-server", "tickets", "mint", "--server", l.lbURL,
		"--workspace", "w", "--source", "a", "--dest", "b", "--ttl", "1m", "--max-bytes", "64MiB", "-o", "json")
	r.wantCode(t, 0, "mint")
	var m mintOut
	decodeJSON(t, r.stdout, &m)
	payload := make([]byte, 8<<20)
	rand.Read(payload)
	want := sha256.Sum256(payload)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	type got struct {
		sum [32]byte
		n   int
		err error
	}
	gotc := make(chan got, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", getURL+"/v1/relay/"+m.Ticket, nil)
		req.Header.Set("Authorization", "Bearer "+m.Ticket)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			gotc <- got{err: err}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			gotc <- got{err: fmt.Errorf("GET %d %s", resp.StatusCode, b)}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		var g got
		copy(g.sum[:], h.Sum(nil))
		g.n, g.err = int(n), err
		gotc <- g
	}()
	if kill {
		// The uploader dies halfway: its TCP connection closes with half
		// the declared Content-Length sent.
		u, _ := url.Parse(putURL)
		c, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "PUT /v1/relay/%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n",
			m.Ticket, u.Host, m.Ticket, len(payload))
		c.Write(payload[:len(payload)/2])
		time.Sleep(300 * time.Millisecond)
		c.Close()
		g := <-gotc
		if g.err == nil {
			t.Fatalf("GET through another node succeeded (%d bytes) after the PUT was killed", g.n)
		}
		t.Logf("GET after the killed PUT: %d bytes, %v", g.n, g.err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, "PUT", putURL+"/v1/relay/"+m.Ticket, bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+m.Ticket)
	resp, err := http.DefaultClient.Do(req)
	var putBody []byte
	if err == nil {
		putBody, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	g := <-gotc
	if err != nil || resp.StatusCode != 200 || !bytes.Contains(putBody, []byte(hex.EncodeToString(want[:]))) {
		t.Fatalf("PUT: %v %s", err, putBody)
	}
	if g.err != nil || g.sum != want {
		t.Fatalf("GET through another node: %d bytes, err %v, digest match %v", g.n, g.err, g.sum == want)
	}
}

// sdkThrough connects the Dev Tunnels Go SDK client to the relay socket of
// nodeURL (the tunnel as the load balancer describes it, its
// clientRelayUri pointed at that node) and echoes through it.
func sdkThrough(t *testing.T, nodeURL, lbURL, key, tunnel string, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := sdkConnectVia(t, ctx, lbURL, nodeURL, key, tunnel)
	defer c.Close()
	if err := sdktest.WaitForwarded(ctx, c, uint16(port)); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(ctx, c, uint16(port), "via "+nodeURL); err != nil {
		t.Fatalf("SDK client via %s: %v", nodeURL, err)
	}
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sdkConnectVia is sdktest.Connect with the endpoint's clientRelayUri
// pointed at nodeURL, so that the relay socket lands on that node.
func sdkConnectVia(t *testing.T, ctx context.Context, lbURL, nodeURL, apiKey, tunnel string) *tunnels.Client {
	t.Helper()
	u, _ := url.Parse(lbURL)
	m, err := tunnels.NewManager([]tunnels.UserAgent{{Name: "warren-test", Version: "1"}},
		func() string { return "Bearer " + apiKey }, u, nil, tunnelproto.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	tun, err := m.GetTunnel(ctx, &tunnels.Tunnel{Name: tunnel}, &tunnels.TunnelRequestOptions{
		IncludePorts: true, TokenScopes: tunnels.TunnelAccessScopes{tunnels.TunnelAccessScopeConnect}})
	if err != nil {
		t.Fatalf("GetTunnel: %v", err)
	}
	if len(tun.Endpoints) != 1 {
		t.Fatalf("endpoints with the host connected: %d", len(tun.Endpoints))
	}
	lbWS, nodeWS := "ws"+strings.TrimPrefix(lbURL, "http"), "ws"+strings.TrimPrefix(nodeURL, "http")
	if !strings.HasPrefix(tun.Endpoints[0].ClientRelayURI, lbWS+"/") {
		t.Fatalf("clientRelayUri %q is not at the load balancer", tun.Endpoints[0].ClientRelayURI)
	}
	tun.Endpoints[0].ClientRelayURI = nodeWS + strings.TrimPrefix(tun.Endpoints[0].ClientRelayURI, lbWS)
	c, err := tunnels.NewClient(log.New(io.Discard, "", 0), tun, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(ctx, ""); err != nil {
		t.Fatalf("SDK connect via %s: %v", nodeURL, err)
	}
	return c
}
