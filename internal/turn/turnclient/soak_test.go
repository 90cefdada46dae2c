//go:build long

package turnclient

// Soak tests, longer than one allocation refresh cycle. Run with
//
//	go test -tags long -run Soak -timeout 30m -v ./internal/turn/turnclient/
//
// TURN_SOAK_DURATION (a Go duration) overrides the default lengths.

import (
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

func soakDuration(t *testing.T, def time.Duration) time.Duration {
	if s := os.Getenv("TURN_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return def
}

// pingPeers runs two local peers that each echo one datagram every
// interval for d and returns how many came back out of how many were sent.
func pingPeers(t *testing.T, local string, d, interval time.Duration) (sent, got int) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp4", local)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 256)
			end := time.Now().Add(d)
			for i := 0; time.Now().Before(end); i++ {
				msg := fmt.Sprintf("peer%d-%06d", p, i)
				c.SetDeadline(time.Now().Add(interval))
				c.Write([]byte(msg))
				ok := false
				for {
					n, err := c.Read(buf)
					if err != nil {
						break
					}
					if string(buf[:n]) == msg {
						ok = true
						break
					}
					if string(buf[:5]) != fmt.Sprintf("peer%d", p) {
						t.Errorf("peer %d got another peer's reply %q", p, buf[:n])
					}
				}
				mu.Lock()
				sent++
				if ok {
					got++
				}
				mu.Unlock()
				if ok {
					time.Sleep(time.Until(time.Now().Add(interval / 2)))
				}
			}
		}()
	}
	wg.Wait()
	return sent, got
}

// TestSoakAllocationRefresh holds an echo through pion's allocation refresh
// (at half its 10 min lifetime) and permission refreshes (every 2 min).
func TestSoakAllocationRefresh(t *testing.T) {
	d := soakDuration(t, 7*time.Minute)
	for _, mode := range []string{"udp", "tcp"} {
		t.Run("turn-over-"+mode, func(t *testing.T) {
			t.Parallel()
			lab := startLab(t, turnlab.Config{})
			peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
			cfg := baseConfig(lab, peer, mode, "udp")
			cfg.Connections = 2
			cfg.Registry = prometheus.NewRegistry()
			// The allocation check authenticates too: keep it out of the
			// way so the auth count below proves pion's own refreshes.
			cfg.AllocationCheck = time.Hour
			r := startClient(t, cfg)
			r.waitReady(t)
			authsBefore := lab.Auths()
			sent, got := pingPeers(t, r.local, d, 500*time.Millisecond)
			t.Logf("%s: %d/%d echoes over %s, TURN auths %d → %d", mode, got, sent, d, authsBefore, lab.Auths())
			if got < sent*99/100 {
				t.Errorf("lost %d of %d echoes", sent-got, sent)
			}
			for _, stage := range []string{overlay.StageForwardingLoop, overlay.StageTURNAllocate, overlay.StageDTLSHandshake} {
				if n := counterValue(r.client.m.TransportFailure.WithLabelValues(stage)); n != 0 {
					t.Errorf("%v worker failures at %s", n, stage)
				}
			}
			if lab.Auths() <= authsBefore {
				t.Error("no authenticated refresh during the soak")
			}
			select {
			case err := <-r.done:
				t.Fatalf("session ended: %v", err)
			default:
			}
		})
	}
}

// TestSoakRESTRotation: turn-rest credentials with ttl=1m rotate at about
// 48 s, make-before-break, and the echo keeps working (docs/protocols/turn-overlay.md §6.10).
func TestSoakRESTRotation(t *testing.T) {
	d := soakDuration(t, 3*time.Minute)
	lab := startLab(t, turnlab.Config{RESTSecret: "soak-secret", DisableStaticUser: true})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Provider, cfg.Link, cfg.RESTSecret, cfg.TURNPort = "turn-rest", "turn-rest://soak@"+lab.TURNUDP+"?ttl=1m", "soak-secret", 0
	cfg.Connections = 2
	cfg.Registry = prometheus.NewRegistry()
	r := startClient(t, cfg)
	r.waitReady(t)
	sent, got := pingPeers(t, r.local, d, 500*time.Millisecond)
	rot := r.client.rotations.Load()
	t.Logf("%d/%d echoes over %s, %d rotations", got, sent, d, rot)
	if want := int64(d/(48*time.Second)) * 2; rot < want-2 {
		t.Errorf("%d rotations, want about %d", rot, want)
	}
	if got < sent*98/100 {
		t.Errorf("lost %d of %d echoes", sent-got, sent)
	}
	select {
	case err := <-r.done:
		t.Fatalf("session ended: %v", err)
	default:
	}
}
