package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
)

// The TURN overlay's local peers and PSK refusals, with the built binaries
// through coturn (docs/protocols/turn-overlay.md §2.3, §2.4, §3.1).

// startWhoami runs a UDP upstream that answers "<payload>|<source ip:port>",
// so a test sees which upstream socket tunnel-server used for a peer.
func startWhoami(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(string(buf[:n])+"|"+from.String()), from)
		}
	}()
	t.Cleanup(func() { pc.Close(); <-done })
	return pc.LocalAddr().String()
}

// askOnce sends one datagram and returns the first reply (bounded wait):
// "served within one datagram" means no retry.
func askOnce(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to the single datagram %q: %v", msg, err)
	}
	return string(buf[:n])
}

func dialLocal(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var droppedLocalRE = regexp.MustCompile(`(?m)^warren_runtime_dropped_packets_total\{[^}]*direction="local_to_relay"[^}]*\} (\S+)$`)

// TestTurnCoturnPeersOneWorker: PSK, one worker, two local peers through
// coturn. Each gets only its own replies, and tunnel-server gives each its
// own upstream socket (the source port upstream sees is stable per peer and
// differs between them).
func TestTurnCoturnPeersOneWorker(t *testing.T) {
	needCoturn(t)
	key := newKey(t)
	srv, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), startWhoami(t))
	addr := startCoturn(t, "--lt-cred-mech", "-u", "alice:secretpw")
	metricsPort := freePort(t)
	cli := start(t, t.TempDir(), cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_PSK="+key,
		"WARREN_TUNNEL_CLIENT_TURN_LINK=generic-turn://alice:secretpw@"+addr), "tunnel-client", "turn",
		"--provider", "generic-turn", "--peer", peer, "--listen", "127.0.0.1:0", "--connections", "1",
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
	// The worker logs its framing on stderr, which is read apart from
	// stdout: the line may come in just after the ready line.
	cli.stderr.wait(t, regexp.MustCompile(`framing=peer-id`), 30*time.Second)
	a, b := dialLocal(t, local), dialLocal(t, local)
	source := map[string]string{}
	for i := range 10 {
		for _, p := range []struct {
			name string
			c    net.Conn
		}{{"A", a}, {"B", b}} {
			msg := fmt.Sprintf("%s-%d", p.name, i)
			payload, from, _ := strings.Cut(askOnce(t, p.c, msg), "|")
			if payload != msg {
				t.Fatalf("peer %s sent %q and got %q: another peer's reply", p.name, msg, payload)
			}
			if prev, ok := source[p.name]; ok && prev != from {
				t.Fatalf("peer %s reached upstream from %s, then from %s", p.name, prev, from)
			}
			source[p.name] = from
		}
	}
	if source["A"] == source["B"] {
		t.Fatalf("peers A and B share upstream socket %s", source["A"])
	}
	if m := droppedLocalRE.FindStringSubmatch(scrape(t, metricsPort)); m == nil || m[1] != "0" {
		t.Fatalf("local_to_relay drops: %v", m)
	}
	stopDaemon(t, cli)
	stopDaemon(t, srv)
}

// TestTurnCoturnCompatRoaming: compat profile, one worker bound to a local
// peer; a new source port (a roaming WireGuard endpoint, a restarted app)
// is served from its first datagram, and its successor too.
func TestTurnCoturnCompatRoaming(t *testing.T) {
	needCoturn(t)
	echo := startTURNLab(t, turnlab.Config{}) // its UDP echo upstream only
	_, peer := startTunnelServer(t, cleanEnv(t), echo.EchoUDP, "--compat-unauthenticated")
	addr := startCoturn(t, "--lt-cred-mech", "-u", "alice:secretpw")
	metricsPort := freePort(t)
	cli := start(t, t.TempDir(), cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK=generic-turn://alice:secretpw@"+addr),
		"tunnel-client", "turn", "--provider", "generic-turn", "--peer", peer, "--listen", "127.0.0.1:0",
		"--connections", "1", "--compat-unauthenticated", "--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
	local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
	first := dialLocal(t, local)
	udpEcho(t, first, []byte("before-roaming")) // may retry: the TURN channel is being set up
	for i := range 3 {
		roamed := dialLocal(t, local)
		msg := fmt.Sprintf("roamed-%d", i)
		if got := askOnce(t, roamed, msg); got != msg {
			t.Fatalf("roamed sender got %q", got)
		}
	}
	if m := droppedLocalRE.FindStringSubmatch(scrape(t, metricsPort)); m == nil || m[1] != "0" {
		t.Fatalf("local_to_relay drops: %v", m)
	}
}

// TestTurnCoturnWrongPSK: a wrong key and an unknown identity are refused
// by tunnel-server with a DTLS alert. The client exits 1 naming the PSK
// setting long before its handshake timeout (set to 10 minutes, so only
// the alert can end the handshake within the wait), and the server logs
// the refusal.
func TestTurnCoturnWrongPSK(t *testing.T) {
	needCoturn(t)
	echo := startTURNLab(t, turnlab.Config{})
	serverKey := newKey(t)
	srv, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+serverKey), echo.EchoUDP, "--handshake-timeout", "10m")
	addr := startCoturn(t, "--lt-cred-mech", "-u", "alice:secretpw")
	dir := t.TempDir()
	cases := []struct {
		name, psk, want, serverLog string
	}{
		{"wrong key", newKey(t), `tunnel-server refused the PSK: its key for psk_identity "default" differs from this psk`,
			"client's PSK differs from the server's key"},
		{"unknown identity", "mallory " + serverKey, `tunnel-server refused the PSK: it has no key for psk_identity "mallory"`,
			`unknown PSK identity \"mallory\"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			os.WriteFile(keyFile, []byte(tc.psk+"\n"), 0o600)
			cli := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK=generic-turn://alice:secretpw@"+addr),
				"tunnel-client", "turn", "--provider", "generic-turn", "--peer", peer, "--listen", "127.0.0.1:0",
				"--psk-file", keyFile, "--handshake-timeout", "10m")
			if code := cli.exitCode(t, 60*time.Second); code != 1 {
				t.Fatalf("exit %d, want 1\nstderr:\n%s", code, cli.stderr)
			}
			stderr := cli.stderr.String()
			if !strings.Contains(stderr, "client runtime failed stage=dtls_handshake") || !strings.Contains(stderr, tc.want) {
				t.Fatalf("stderr does not name the PSK:\n%s", stderr)
			}
			if strings.Contains(stderr, serverKey) {
				t.Fatal("stderr shows a key")
			}
			srv.stderr.wait(t, regexp.MustCompile(`event=connection_failure.*`+regexp.QuoteMeta(tc.serverLog)), 30*time.Second)
		})
	}
}
