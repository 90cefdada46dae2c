package e2e

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
)

// TestTurnWorkersTwoPeersAndRestart drives the built binaries with four
// workers (TURN over TCP): two local UDP peers each get only their own
// replies, then one worker's TURN connection is killed; the worker is
// restarted and both peers keep getting their echoes.
func TestTurnWorkersTwoPeersAndRestart(t *testing.T) {
	lab := startTURNLab(t, turnlab.Config{})
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), lab.EchoUDP)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "psk")
	os.WriteFile(keyFile, []byte(key), 0o600)
	link := fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNTCP)
	cli := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK="+link), "tunnel-client", "turn",
		"--provider", "generic-turn", "--peer", peer, "--listen", "127.0.0.1:0", "--mode", "tcp",
		"--connections", "4", "--psk-file", keyFile)
	local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]

	dial := func() net.Conn {
		c, err := net.Dial("udp4", local)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	// Each peer sends tagged datagrams, interleaved, and must read back
	// only its own tags.
	exchange := func(round int) {
		t.Helper()
		for i := range 8 {
			for _, p := range []struct {
				name string
				c    net.Conn
			}{{"A", a}, {"B", b}} {
				msg := []byte(fmt.Sprintf("%s-%d-%d", p.name, round, i))
				got := echoOwn(t, p.c, msg)
				if !bytes.HasPrefix(got, []byte(p.name+"-")) {
					t.Fatalf("peer %s got %q, another peer's reply", p.name, got)
				}
			}
		}
	}
	exchange(0)

	if !lab.KillOneTCP() {
		t.Fatal("no TURN TCP connection to kill")
	}
	cli.stderr.wait(t, regexpOf(`event=worker_restart_scheduled`), 30*time.Second)
	// Four workers were ready at start; a fifth ready line is the restart.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(cli.stderr.String(), "event=worker_ready") < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the killed worker did not come back:\n%s", cli.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	exchange(1)
}

// echoOwn sends msg until a reply arrives (UDP may drop while a worker
// restarts) and returns the first reply read. A reply to an earlier
// attempt of the same message is accepted.
func echoOwn(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	for try := 0; try < 40; try++ {
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Read(buf); err == nil {
			return append([]byte(nil), buf[:n]...)
		}
	}
	t.Fatalf("no reply to %q", msg)
	return nil
}
