package turncontrol

import (
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// Event kinds of the control plane's own (the worker and provider events
// keep turnclient's names: worker_stage, worker_ready, worker_rotated,
// worker_restart_scheduled, provider_resolution).
const (
	EventProfileCreated    = "profile_created"
	EventProfileDeleted    = "profile_deleted"
	EventSessionStarting   = "session_starting"
	EventSessionReady      = "session_ready"
	EventSessionFailed     = "session_failed"
	EventSessionStopped    = "session_stopped"
	EventChallenge         = "challenge"
	EventChallengeAnswered = "challenge_answered"
	EventChallengeCanceled = "challenge_canceled"
	EventChallengeExpired  = "challenge_expired"
	// EventGap is sent in place of events that left the ring before the
	// reader asked for them.
	EventGap = "events_lost"
)

// Event is one line of /v1/events.
type Event struct {
	Seq       uint64                  `json:"seq"`
	Time      time.Time               `json:"time"`
	Kind      string                  `json:"kind"`
	Profile   string                  `json:"profile,omitempty"`
	SessionID string                  `json:"session_id,omitempty"`
	Stage     string                  `json:"stage,omitempty"`
	Result    string                  `json:"result,omitempty"`
	Worker    *int                    `json:"worker,omitempty"`
	Relay     string                  `json:"relay,omitempty"`
	DelayMS   int64                   `json:"delay_ms,omitempty"`
	Error     string                  `json:"error,omitempty"`
	Challenge *turnprovider.Challenge `json:"challenge,omitempty"`
	// Lost counts the events an events_lost line stands for.
	Lost uint64 `json:"lost,omitempty"`
}

// ring is the bounded event history. Readers wait on the channel returned
// by since, which is closed at the next publish.
type ring struct {
	mu     sync.Mutex
	buf    []Event // oldest first, at most cap
	size   int
	next   uint64 // seq of the next event; seqs start at 1
	notify chan struct{}
}

func newRing(size int) *ring {
	return &ring{size: size, next: 1, notify: make(chan struct{})}
}

func (r *ring) publish(ev Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev.Seq = r.next
	r.next++
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	if len(r.buf) == r.size {
		copy(r.buf, r.buf[1:])
		r.buf = r.buf[:r.size-1]
	}
	r.buf = append(r.buf, ev)
	close(r.notify)
	r.notify = make(chan struct{})
	return ev
}

// since returns the events after seq, how many events after seq are no
// longer held, and a channel closed when the next event is published.
func (r *ring) since(after uint64) (evs []Event, lost uint64, wait <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.buf) > 0 && r.buf[0].Seq > after+1 {
		lost = r.buf[0].Seq - after - 1
	}
	for _, ev := range r.buf {
		if ev.Seq > after {
			evs = append(evs, ev)
		}
	}
	return evs, lost, r.notify
}
