package turnclient

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// allocationFailures is the post-ready failures a lost allocation can be
// reported as: an error response (turn_allocate) or silence (forwarding_loop,
// what a pion server does for a request without an allocation).
func allocationFailures(c *Client) float64 {
	return counterValue(c.m.TransportFailure.WithLabelValues(overlay.StageTURNAllocate)) +
		counterValue(c.m.TransportFailure.WithLabelValues(overlay.StageForwardingLoop))
}

// waitFailures waits (up to a generous deadline, not a timing assertion)
// until the workers have noticed n lost allocations.
func waitFailures(t *testing.T, r *running, n float64) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for allocationFailures(r.client) < n {
		select {
		case err := <-r.done:
			t.Fatalf("session ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers noticed %v lost allocations, want %v", allocationFailures(r.client), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Over UDP a lost allocation produces no error anywhere in pion (failed
// refreshes are only logged), so only the allocation check can notice it.
func TestWorkerRestartAfterAllocationLostOverUDP(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Connections = 2
	cfg.AllocationCheck = 200 * time.Millisecond
	cfg.Registry = prometheus.NewRegistry()
	r := startClient(t, cfg)
	r.waitReady(t)
	c, err := net.Dial("udp4", r.local)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	echoOnce(t, c, []byte("before-loss"))
	// A few healthy checks (two per worker) pass without restarting
	// anything.
	deadline := time.Now().Add(30 * time.Second)
	for counterValue(r.client.m.AllocationChecks) < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%v allocation checks done, want 4", counterValue(r.client.m.AllocationChecks))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := allocationFailures(r.client); n != 0 {
		t.Fatalf("%v restarts with healthy allocations", n)
	}

	if n := lab.KillRelays(); n != 2 {
		t.Fatalf("killed %d relays, want 2", n)
	}
	waitFailures(t, r, 2)
	echoOnce(t, c, []byte("after-loss"))
	select {
	case err := <-r.done:
		t.Fatalf("session ended: %v", err)
	default:
	}
}

// A TURN server restart on the same ports: TURN-over-UDP workers get no
// signal at all, TURN-over-TCP workers see their connection drop. Both
// must come back on the new server.
func TestWorkerRestartAfterTURNServerRestart(t *testing.T) {
	for _, mode := range []string{"udp", "tcp"} {
		t.Run("turn-over-"+mode, func(t *testing.T) {
			lab := startLab(t, turnlab.Config{})
			peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
			cfg := baseConfig(lab, peer, mode, "udp")
			cfg.AllocationCheck = 200 * time.Millisecond
			cfg.Registry = prometheus.NewRegistry()
			r := startClient(t, cfg)
			r.waitReady(t)
			c, err := net.Dial("udp4", r.local)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echoOnce(t, c, []byte("before-restart"))

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := lab.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			waitFailures(t, r, 1)
			echoOnce(t, c, []byte("after-restart"))
			if lab.Allocations() != 1 {
				t.Fatalf("%d allocations on the restarted server, want 1", lab.Allocations())
			}
		})
	}
}
