package turnclient

import (
	"slices"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/turn/overlay"
)

// connectStages are a worker's connect stages in order.
var connectStages = []string{overlay.StageTURNDial, overlay.StageTURNAllocate, overlay.StageDTLSHandshake}

// Observability for a supervisor that runs sessions in-process (the
// tunnel-client control plane): Config.OnEvent reports each step as it
// happens, Client.Snapshot the workers' state at any time. Both mirror the
// structured log events, so a log reader and an API caller see the same
// story.

// Event kinds reported to Config.OnEvent. Most are the log's event names.
const (
	EventProviderResolution = "provider_resolution"
	EventWorkerStage        = "worker_stage" // a worker enters a connect stage
	EventWorkerReady        = "worker_ready"
	EventWorkerRotated      = "worker_rotated"
	EventWorkerRestart      = "worker_restart_scheduled"
	EventRuntimeReady       = "runtime_ready"
	EventRuntimeFailure     = "runtime_failure"
	EventRuntimeStop        = "runtime_stop"
)

// Worker states in a WorkerSnapshot.
const (
	WorkerStarting   = "starting"   // not yet connecting (spacing delay)
	WorkerConnecting = "connecting" // in a connect stage
	WorkerReady      = "ready"
	WorkerRestarting = "restarting" // waiting out a restart backoff
	WorkerStopped    = "stopped"
)

// Event is one step of a session, for Config.OnEvent.
type Event struct {
	Kind   string
	Stage  string
	Result string // the log's result: started, succeeded, failed, ready, retrying, stopped
	// Worker is the worker's index, -1 for session-wide events.
	Worker int
	// Relay is the worker's TURN relay address (worker_ready, worker_rotated).
	Relay string
	// Delay and BudgetLeft describe a scheduled restart.
	Delay      time.Duration
	BudgetLeft int
	Err        error
}

// WorkerSnapshot is one worker's state.
type WorkerSnapshot struct {
	ID         int       `json:"id"`
	State      string    `json:"state"`
	Stage      string    `json:"stage"`
	Relay      string    `json:"relay,omitempty"`
	Restarts   int       `json:"restarts"`
	Rotations  int       `json:"rotations"`
	ReadySince time.Time `json:"ready_since,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// Snapshot is a session's state at one instant.
type Snapshot struct {
	SessionID string `json:"session_id"`
	// Stage is where the session is: provider_resolve until the
	// credentials resolve, then the least advanced connecting worker's
	// stage, forwarding_loop once every worker has been ready, and the
	// failing stage (or shutdown) once it ended.
	Stage   string           `json:"stage"`
	Ready   bool             `json:"ready"`
	Workers []WorkerSnapshot `json:"workers"`
}

// observer keeps what Snapshot reports, updated at the same points that
// log and call OnEvent.
type observer struct {
	mu      sync.Mutex
	stage   string
	workers map[int]*WorkerSnapshot
}

// emit records ev in the snapshot state and passes it to OnEvent.
func (c *Client) emit(ev Event) {
	c.obs.mu.Lock()
	if c.obs.workers == nil {
		c.obs.workers = map[int]*WorkerSnapshot{}
	}
	if ev.Worker >= 0 {
		w := c.obs.workers[ev.Worker]
		if w == nil {
			w = &WorkerSnapshot{ID: ev.Worker}
			c.obs.workers[ev.Worker] = w
		}
		switch ev.Kind {
		case EventWorkerStage:
			w.State, w.Stage = WorkerConnecting, ev.Stage
		case EventWorkerReady:
			w.State, w.Stage, w.Relay, w.ReadySince = WorkerReady, ev.Stage, ev.Relay, time.Now()
		case EventWorkerRotated:
			w.Relay = ev.Relay
			w.Rotations++
		case EventWorkerRestart:
			w.State, w.Stage, w.Relay, w.ReadySince = WorkerRestarting, ev.Stage, "", time.Time{}
			w.Restarts++
		}
		if ev.Err != nil {
			w.LastError = ev.Err.Error()
		}
	} else if ev.Stage != "" {
		c.obs.stage = ev.Stage
	}
	if ev.Kind == EventRuntimeStop || ev.Kind == EventRuntimeFailure {
		// The session is over: no worker serves any more.
		for i := range c.cfg.Connections {
			w := c.obs.workers[i]
			if w == nil {
				w = &WorkerSnapshot{ID: i}
				c.obs.workers[i] = w
			}
			w.State, w.ReadySince = WorkerStopped, time.Time{}
		}
	}
	c.obs.mu.Unlock()
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ev)
	}
}

// Snapshot returns the session's current state. It is safe to call at any
// time, from any goroutine.
func (c *Client) Snapshot() Snapshot {
	c.readyMu.Lock()
	ready := c.allReady
	c.readyMu.Unlock()
	c.obs.mu.Lock()
	defer c.obs.mu.Unlock()
	s := Snapshot{SessionID: c.sessionID, Stage: c.obs.stage, Ready: ready}
	least := -1
	for i := range c.cfg.Connections {
		w := WorkerSnapshot{ID: i, State: WorkerStarting}
		if o := c.obs.workers[i]; o != nil {
			w = *o
		}
		if r := slices.Index(connectStages, w.Stage); w.State == WorkerConnecting && r >= 0 && (least < 0 || r < least) {
			least = r
		}
		s.Workers = append(s.Workers, w)
	}
	if s.Stage == overlay.StageProviderResolve && least >= 0 {
		s.Stage = connectStages[least]
	}
	return s
}

// workerStage reports that w entered a connect stage. A rotation connects
// beside a live session, so a ready worker keeps its state.
func (c *Client) workerStage(w *worker, stage string) {
	c.obs.mu.Lock()
	o := c.obs.workers[w.id]
	rotating := o != nil && o.State == WorkerReady
	c.obs.mu.Unlock()
	if rotating {
		return
	}
	c.emit(Event{Kind: EventWorkerStage, Stage: stage, Result: "started", Worker: w.id})
}
