package winghub

import (
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Bandwidth limits what each user receives of PTY output (docs/protocols/wing.md §3.2).
// Zero values turn a limit off; the zero Bandwidth meters nothing.
type Bandwidth struct {
	// Rate is the sustained bytes per second per user: frames beyond it
	// are delayed in that user's socket queue (a user who keeps exceeding
	// it fills the queue and is disconnected, see
	// Config.BrowserQueueBytes). 0: no rate limit.
	Rate int64
	// Burst is the token bucket's size in bytes. Default Rate (at least
	// one 512 KiB frame).
	Burst int64
	// MonthlyCap is the bytes a user may receive per calendar month (UTC).
	// Past it the user gets bandwidth.exceeded and the socket is closed.
	// Counted in memory, and kept in Config.Usage when one is set (else a
	// relay restart starts the month over). 0: none.
	MonthlyCap int64
}

func (b Bandwidth) on() bool { return b.Rate > 0 || b.MonthlyCap > 0 }

type bucket struct {
	tokens float64
	last   time.Time
	month  string
	used   int64
}

type meter struct {
	cfg   Bandwidth
	mu    sync.Mutex
	users map[string]*bucket
	now   func() time.Time
	// pending is what was charged and not yet added to the usage store,
	// by user and month; nil without a store (bandwidthstore.go).
	pending map[usageKey]int64
}

func newMeter(cfg Bandwidth) *meter {
	if cfg.Rate > 0 && cfg.Burst < 512<<10 {
		cfg.Burst = max(cfg.Burst, cfg.Rate, 512<<10)
	}
	return &meter{cfg: cfg, users: map[string]*bucket{}, now: time.Now}
}

// take charges n bytes to user. It returns how long to hold the frame
// for the rate limit, and false when the monthly cap is exhausted.
func (m *meter) take(user string, n int) (time.Duration, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	b := m.users[user]
	if b == nil {
		b = &bucket{tokens: float64(m.cfg.Burst), last: now}
		m.users[user] = b
	}
	month := now.UTC().Format("2006-01")
	if b.month != month {
		b.month, b.used = month, 0
	}
	b.used += int64(n)
	if m.pending != nil {
		m.pending[usageKey{user, month}] += int64(n)
	}
	if m.cfg.MonthlyCap > 0 && b.used > m.cfg.MonthlyCap {
		return 0, false
	}
	if m.cfg.Rate <= 0 {
		return 0, true
	}
	b.tokens = min(float64(m.cfg.Burst), b.tokens+now.Sub(b.last).Seconds()*float64(m.cfg.Rate))
	b.last = now
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return 0, true
	}
	return time.Duration(-b.tokens / float64(m.cfg.Rate) * float64(time.Second)), true
}

// Usage returns the bytes user was charged this month.
func (h *Hub) Usage(user string) int64 {
	if h.bw == nil {
		return 0
	}
	h.bw.mu.Lock()
	defer h.bw.mu.Unlock()
	if b := h.bw.users[user]; b != nil && b.month == h.bw.now().UTC().Format("2006-01") {
		return b.used
	}
	return 0
}

// charge meters a PTY frame to the controller b of route sid and returns
// when the rate limit lets it go (zero: now); b's writer holds it until
// then, so the wait delays only b. false: the frame must not be sent, b
// has been told and is being closed.
func (h *Hub) charge(b *browserConn, sid string, n int) (time.Time, bool) {
	if h.bw == nil {
		return time.Time{}, true
	}
	wait, ok := h.bw.take(b.user.UserID, n)
	if !ok {
		h.m.bandwidthExceeded.Inc()
		h.log.Warn("monthly bandwidth cap reached; closing the user's socket", "user", b.user.UserID)
		var n *wingNotice
		h.mu.Lock()
		if rt := h.routes[sid]; rt != nil && rt.controller == b {
			n = h.controllerLeft(rt, b)
		}
		h.mu.Unlock()
		h.sendNotices(n)
		b.q.push([]byte(`{"type":"bandwidth.exceeded","message":"Monthly bandwidth limit exceeded. The session keeps running on the wing; reattach next month or ask the relay operator to raise the cap."}`), time.Time{})
		b.q.closeAfter(websocket.StatusNormalClosure, "bandwidth exceeded")
		return time.Time{}, false
	}
	if wait > 0 {
		return time.Now().Add(wait), true
	}
	return time.Time{}, true
}
