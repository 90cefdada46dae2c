package turncontrol

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnclient"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// Session states.
const (
	StateStarting = "starting" // resolving, connecting workers
	StateReady    = "ready"    // every worker has been ready
	StateStopping = "stopping"
	StateStopped  = "stopped"
	StateFailed   = "failed"
)

// SessionView is a session as /v1/sessions shows it.
type SessionView struct {
	Profile   string    `json:"profile"`
	SessionID string    `json:"session_id,omitempty"`
	State     string    `json:"state"`
	Stage     string    `json:"stage,omitempty"`
	Ingress   string    `json:"ingress,omitempty"`
	Local     string    `json:"local,omitempty"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// Error is the failure, as `tunnel-client turn` prints it after
	// "client runtime failed stage=<stage>: ".
	Error string `json:"error,omitempty"`
	// ProviderUnavailable is set when the provider cannot resolve here
	// (turnprovider.ErrNotImplemented; tunnel-client turn exits 3).
	ProviderUnavailable bool                        `json:"provider_unavailable,omitempty"`
	Workers             []turnclient.WorkerSnapshot `json:"workers"`
	Counters            Counters                    `json:"counters"`
	// Challenges are the ids of the challenges the session waits on.
	Challenges []string `json:"challenges,omitempty"`
}

type session struct {
	c       *Controller
	profile string
	reg     *prometheus.Registry
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}

	mu        sync.Mutex
	client    *turnclient.Client
	state     string
	stage     string
	ingress   string
	local     string
	startedAt time.Time
	endedAt   time.Time
	err       error
}

func newSession(c *Controller, profile string) *session {
	ctx, cancel := context.WithCancel(c.ctx)
	return &session{c: c, profile: profile, reg: prometheus.NewRegistry(), ctx: ctx, cancel: cancel,
		done: make(chan struct{}), state: StateStarting, stage: overlay.StagePolicyValidate, startedAt: time.Now().UTC()}
}

// start prepares the profile, binds the local address and runs the
// session in the background. Its error is the Start call's answer; the
// caller then ends the session with it.
func (s *session) start(p Profile) error {
	plan, err := s.c.cfg.Prepare(p)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	s.c.learnSecrets(plan)
	cfg := plan.Client
	cfg.Registry = s.reg
	cfg.OnEvent = s.onEvent
	cfg.Solver = &solver{c: s.c, s: s}
	client, err := turnclient.New(cfg, s.c.log.With("profile", s.profile))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	s.mu.Lock()
	s.client = client
	s.ingress = cfg.Ingress
	if s.ingress == "" {
		s.ingress = "udp"
	}
	s.mu.Unlock()

	var run func(ctx context.Context) error
	if s.ingress == "tcp" {
		// Bound up front, like the udp socket, so a taken port fails the
		// start call; served only once a session is up (turnclient.RunTCP).
		ln, err := net.Listen("tcp", plan.Listen)
		if err != nil {
			return overlay.Errorf(overlay.StageLocalBind, "listen tcp %s (turn.listen): %w", plan.Listen, err)
		}
		s.setLocal(ln.Addr().String())
		run = func(ctx context.Context) error {
			defer ln.Close()
			return client.RunTCP(ctx, func(context.Context) (net.Listener, error) { return ln, nil })
		}
	} else {
		pc, err := net.ListenPacket("udp", plan.Listen)
		if err != nil {
			return overlay.Errorf(overlay.StageLocalBind, "listen udp %s (turn.listen): %w", plan.Listen, err)
		}
		if uc, ok := pc.(*net.UDPConn); ok {
			uc.SetReadBuffer(4 << 20)
		}
		s.setLocal(pc.LocalAddr().String())
		run = func(ctx context.Context) error {
			defer pc.Close()
			return client.RunUDP(ctx, pc)
		}
	}
	s.c.log.Info("session starting", "profile", s.profile, "session_id", client.SessionID(), "local", s.local)
	s.c.publish(Event{Kind: EventSessionStarting, Profile: s.profile, SessionID: client.SessionID(), Stage: overlay.StagePolicyValidate})
	go func() { s.end(run(s.ctx)) }()
	return nil
}

func (s *session) setLocal(a string) {
	s.mu.Lock()
	s.local = a
	s.mu.Unlock()
}

// end records how the session ended, publishes it and releases the slot.
func (s *session) end(err error) {
	s.cancel()
	s.mu.Lock()
	s.endedAt = time.Now().UTC()
	ev := Event{Profile: s.profile, SessionID: s.idLocked()}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.state, s.err = StateFailed, err
		s.stage = overlay.StageOf(err)
		if s.stage == "" {
			s.stage = overlay.StagePolicyValidate
		}
		ev.Kind, ev.Stage, ev.Result, ev.Error = EventSessionFailed, s.stage, "failed", s.c.redact(failureMsg(err))
	} else {
		s.state, s.stage = StateStopped, overlay.StageShutdown
		ev.Kind, ev.Stage, ev.Result = EventSessionStopped, overlay.StageShutdown, "stopped"
	}
	s.mu.Unlock()
	s.c.log.Info("session ended", "profile", s.profile, "state", ev.Kind, "err", ev.Error)
	s.c.publish(ev)
	close(s.done)
	s.c.wg.Done()
}

// failureMsg is err without its stage prefix: the stage is its own field.
func failureMsg(err error) string {
	var se *overlay.StageError
	if errors.As(err, &se) {
		return se.Msg()
	}
	return err.Error()
}

func (s *session) stop() {
	s.mu.Lock()
	if s.state == StateStarting || s.state == StateReady {
		s.state = StateStopping
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *session) isEnded() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) stateName() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

func (s *session) idLocked() string {
	if s.client == nil {
		return ""
	}
	return s.client.SessionID()
}

func (s *session) clientID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.idLocked()
}

// onEvent turns the engine's events into control-plane events.
func (s *session) onEvent(ev turnclient.Event) {
	kind := ev.Kind
	switch ev.Kind {
	case turnclient.EventRuntimeFailure, turnclient.EventRuntimeStop:
		return // end reports these, with the state they leave
	case turnclient.EventRuntimeReady:
		kind = EventSessionReady
		s.mu.Lock()
		if s.state == StateStarting {
			s.state = StateReady
		}
		s.mu.Unlock()
	}
	e := Event{Kind: kind, Profile: s.profile, SessionID: s.clientID(), Stage: ev.Stage, Result: ev.Result,
		Relay: ev.Relay, DelayMS: ev.Delay.Milliseconds()}
	if ev.Worker >= 0 {
		w := ev.Worker
		e.Worker = &w
	}
	if ev.Err != nil {
		e.Error = s.c.redact(ev.Err.Error())
	}
	s.c.publish(e)
}

func (s *session) view() SessionView {
	s.mu.Lock()
	v := SessionView{Profile: s.profile, SessionID: s.idLocked(), State: s.state, Stage: s.stage, Ingress: s.ingress,
		Local: s.local, StartedAt: s.startedAt, EndedAt: s.endedAt}
	if s.err != nil {
		v.Error = s.c.redact(failureMsg(s.err))
		v.ProviderUnavailable = errors.Is(s.err, turnprovider.ErrNotImplemented)
	}
	client := s.client
	ended := !s.endedAt.IsZero()
	s.mu.Unlock()
	if client != nil {
		snap := client.Snapshot()
		v.Workers = snap.Workers
		if !ended {
			v.Stage = snap.Stage
		}
		for i := range v.Workers {
			v.Workers[i].LastError = s.c.redact(v.Workers[i].LastError)
		}
	}
	if v.Workers == nil {
		v.Workers = []turnclient.WorkerSnapshot{}
	}
	v.Counters = countersOf(s.reg)
	v.Challenges = s.c.pendingFor(s.profile)
	return v
}
