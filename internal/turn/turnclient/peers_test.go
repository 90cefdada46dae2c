package turnclient

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// whoami is a UDP upstream that answers each datagram with the datagram
// and the source address it came from: "<payload>|<ip:port>".
func whoami(t testing.TB) string {
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

// ask sends msg once and returns the first reply, failing after 5s.
func ask(t testing.TB, c net.Conn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no reply to %q from its first datagram: %v", msg, err)
	}
	return string(buf[:n])
}

// TestFramedPeersShareOneWorker: with the PSK profile one worker carries
// two local peers; each gets only its own replies, and tunnel-server gives
// each its own upstream socket (a stable, distinct source port).
func TestFramedPeersShareOneWorker(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	up := whoami(t)
	peer := startServer(t, turnserver.Config{Connect: up, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Registry = prometheus.NewRegistry()
	r := startClient(t, cfg)
	r.waitReady(t)
	if s := r.client.workers[0].cur.Load(); s == nil || !s.framed {
		t.Fatal("the PSK session did not negotiate peer-id framing")
	}
	a, _ := net.Dial("udp4", r.local)
	defer a.Close()
	b, _ := net.Dial("udp4", r.local)
	defer b.Close()
	source := map[string]string{}
	for i := range 10 {
		for name, c := range map[string]net.Conn{"A": a, "B": b} {
			msg := fmt.Sprintf("%s-%d", name, i)
			got := ask(t, c, msg)
			payload, from, _ := strings.Cut(got, "|")
			if payload != msg {
				t.Fatalf("peer %s sent %q, got %q", name, msg, got)
			}
			if prev, ok := source[name]; ok && prev != from {
				t.Fatalf("peer %s reached upstream from %s, then from %s", name, prev, from)
			}
			source[name] = from
		}
	}
	if source["A"] == source["B"] {
		t.Fatalf("both peers share upstream socket %s", source["A"])
	}
	if d := counterValue(r.client.m.Dropped.WithLabelValues(overlaymetrics.LocalToRelay)); d != 0 {
		t.Fatalf("%v datagrams dropped", d)
	}
}

// TestCompatRoamingSender: with one raw (compat) worker bound to a peer, a
// new source port is served from its first datagram, as a roaming endpoint
// is by the upstream implementations, instead of being dropped until the
// old binding idles out.
func TestCompatRoamingSender(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Compat: true})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Compat = true
	cfg.Registry = prometheus.NewRegistry()
	r := startClient(t, cfg)
	r.waitReady(t)
	old, _ := net.Dial("udp4", r.local)
	defer old.Close()
	if got := ask(t, old, "before-roam"); got != "before-roam" {
		t.Fatalf("got %q", got)
	}
	roamed, _ := net.Dial("udp4", r.local)
	defer roamed.Close()
	if got := ask(t, roamed, "after-roam"); got != "after-roam" {
		t.Fatalf("got %q", got)
	}
	if d := counterValue(r.client.m.Dropped.WithLabelValues(overlaymetrics.LocalToRelay)); d != 0 {
		t.Fatalf("%v datagrams dropped", d)
	}
}
