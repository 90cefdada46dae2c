package turnclient

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// OnEvent and Snapshot tell a supervisor what the logs tell a reader:
// stages, readiness and restarts, per worker.
func TestEventsAndSnapshot(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "tcp", "udp")
	cfg.Connections = 2
	var mu sync.Mutex
	var events []Event
	cfg.OnEvent = func(ev Event) { mu.Lock(); events = append(events, ev); mu.Unlock() }
	r := startClient(t, cfg)
	r.waitReady(t)

	s := r.client.Snapshot()
	if !s.Ready || s.Stage != overlay.StageForwardingLoop || len(s.Workers) != 2 || s.SessionID != r.client.SessionID() {
		t.Fatalf("snapshot after ready: %+v", s)
	}
	for _, w := range s.Workers {
		if w.State != WorkerReady || w.Relay == "" || w.ReadySince.IsZero() {
			t.Errorf("worker after ready: %+v", w)
		}
	}
	count := func(kind, stage string, worker int) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, ev := range events {
			if ev.Kind == kind && (stage == "" || ev.Stage == stage) && (worker < -1 || ev.Worker == worker) {
				n++
			}
		}
		return n
	}
	for w := range 2 {
		for _, st := range connectStages {
			if count(EventWorkerStage, st, w) != 1 {
				t.Errorf("worker %d: %d %s stage events", w, count(EventWorkerStage, st, w), st)
			}
		}
		if count(EventWorkerReady, "", w) != 1 {
			t.Errorf("worker %d: no ready event", w)
		}
	}
	if count(EventProviderResolution, "", -1) != 2 || count(EventRuntimeReady, "", -1) != 1 {
		t.Errorf("session events: %+v", events)
	}

	// Killing the TURN connections restarts both workers: counted per worker.
	c, _ := net.Dial("udp4", r.local)
	defer c.Close()
	echoOnce(t, c, []byte("before-kill"))
	lab.KillTCP()
	deadline := time.Now().Add(20 * time.Second)
	for count(EventWorkerRestart, "", -2) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no restart events")
		}
		time.Sleep(20 * time.Millisecond)
	}
	echoOnce(t, c, []byte("after-kill"))
	for _, w := range r.client.Snapshot().Workers {
		if w.Restarts < 1 || w.LastError == "" {
			t.Errorf("worker after restart: %+v", w)
		}
	}
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for startClient's cleanup
	if count(EventRuntimeStop, overlay.StageShutdown, -1) != 1 || r.client.Snapshot().Stage != overlay.StageShutdown {
		t.Errorf("no stop event / stage: %+v", r.client.Snapshot())
	}
	for _, w := range r.client.Snapshot().Workers {
		if w.State != WorkerStopped {
			t.Errorf("worker after stop: %+v", w)
		}
	}
}
