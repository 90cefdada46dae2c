package wingagent

import (
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Output flow control (docs/protocols/wing.md §2.12). The relay's send
// queue for a user socket is bounded, and closes a socket that falls too
// far behind; a program writing faster than the path to its viewer
// carries would get its viewer disconnected. So a session's output loop
// stops reading the PTY while the controller has more than a window of
// output unacknowledged: the PTY's kernel buffer fills and the program
// blocks in write(2), as it would on a slow local terminal.
//
// The window applies only to the controller, and only once it has
// acknowledged output (pty.ack), or from the start when it declared acks
// and the relay confirmed it passes them on (relay_acks): clients and
// relays that know nothing of acks keep the unthrottled behaviour. Spectators are never waited for:
// a read-only viewer, possibly another user, must not be able to slow
// down or freeze someone else's session; a spectator that falls behind
// is disconnected by the relay and reattaches, as before.
//
// A controller that stops acknowledging must not freeze the session:
// its window state is dropped when it detaches or its socket closes (the
// relay sends pty.detach), when the wing's relay connection drops, on a
// reattach, and after flowStall without progress while the wing waits.
// Output over a direct channel is not counted against the window: SCTP
// has flow control of its own. Output sent again over the relay after a
// channel died (direct.go, clientFallback) keeps to the same window.

// flowStall is how long the output loop waits for an acknowledgement
// before it gives up the window (a controller that vanished without its
// socket closing, e.g. a laptop put to sleep); a later ack turns it on
// again.
var flowStall = 60 * time.Second

// flowState is a session's controller window, guarded by session.mu.
type flowState struct {
	window int64 // 0: the wing takes no acks (Config.OutputWindow < 0)
	on     bool  // the controller acknowledged: the window applies
	base   int64 // where the controller's live output started
	acked  int64 // output offset the controller has consumed
	moved  time.Time
	wake   chan struct{} // closed on any change; nil while nobody waits
}

func (f *flowState) notify() {
	if f.wake != nil {
		close(f.wake)
		f.wake = nil
	}
}

// flowWindow is the window advertised in pty.started.
func (a *Agent) flowWindow() int64 {
	if a.cfg.OutputWindow < 0 {
		return 0
	}
	return int64(a.cfg.OutputWindow)
}

// flowReset starts a controller's window state, off until its first
// ack; called with s.mu held when the controller's live output starts
// at base.
func (s *session) flowReset(base int64) {
	s.flow.on, s.flow.base, s.flow.acked = false, base, base
	s.flow.notify()
}

// flowDeclared: the controller declared acks and the relay confirmed it
// passes them on (pty.start or pty.attach with acks and relay_acks): the
// window applies from the first byte, not from the first ack; called
// with s.mu held, after flowReset.
func (s *session) flowDeclared(acks, relayAcks bool) {
	if acks && relayAcks && s.flow.window > 0 {
		s.flow.on, s.flow.moved = true, time.Now()
	}
}

// flowOff drops the controller's window state: output flows unthrottled
// until it acknowledges again.
func (s *session) flowOff(why string) {
	s.mu.Lock()
	was := s.flow.on
	s.flow.on = false
	s.flow.notify()
	s.mu.Unlock()
	if was {
		s.a.log.Debug("session output window off", "session", s.id, "why", why)
	}
}

// ack handles pty.ack: output up to the sealed offset has been consumed.
// It is sealed with the controller's key, so only the controller of the
// moment can move the window; an offset outside [base, produced] (a
// previous controller's, or a bogus one) is ignored.
func (s *session) ack(data string) {
	s.mu.Lock()
	c, window := s.out, s.flow.window
	s.mu.Unlock()
	if c == nil || window <= 0 {
		return
	}
	seq, err := wp.OpenAck(c, data)
	if err != nil {
		s.a.log.Debug("pty.ack that does not open dropped", "session", s.id, "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &s.flow
	if s.out != c || seq < f.base || seq > s.d.outSeq {
		return
	}
	if !f.on {
		f.on, f.acked, f.moved = true, max(f.acked, seq), time.Now()
		f.notify()
		return
	}
	if seq > f.acked {
		f.acked, f.moved = seq, time.Now()
		f.notify()
	}
}

// waitWindow holds the output loop while the controller has a window or
// more of relay output unacknowledged.
func (s *session) waitWindow() {
	s.waitFlow(func() bool { return s.d.sender == nil && s.d.outSeq-s.flow.acked >= s.flow.window })
}

// waitFlow holds the caller while the controller's window is on and full
// says it is full (called with s.mu held); it returns when an ack makes
// room, the window goes off, or after flowStall without progress.
func (s *session) waitFlow(full func() bool) {
	var started time.Time
	for {
		s.mu.Lock()
		f := &s.flow
		if !f.on || !full() {
			s.mu.Unlock()
			return
		}
		if started.IsZero() {
			started = time.Now()
		}
		if f.wake == nil {
			f.wake = make(chan struct{})
		}
		wake, since := f.wake, f.moved
		s.mu.Unlock()
		since = latest(since, started)
		t := time.NewTimer(time.Until(since.Add(flowStall)))
		select {
		case <-wake:
		case <-t.C:
			s.mu.Lock()
			stalled := s.flow.on && !s.flow.moved.After(since)
			if stalled {
				s.flow.on = false
				s.flow.notify()
			}
			s.mu.Unlock()
			if stalled {
				s.a.log.Warn("the session's controller acknowledged no output for a while; sending without a window until it does",
					"session", s.id, "waited", flowStall)
			}
		}
		t.Stop()
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// flowsOff drops every session's window (the relay connection dropped:
// acks in flight are lost, and the controller reattaches).
func (a *Agent) flowsOff(why string) {
	for _, s := range a.allSessions() {
		s.flowOff(why)
	}
}
