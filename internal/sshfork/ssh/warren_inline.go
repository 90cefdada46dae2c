package ssh

import (
	"sync/atomic"
	"time"
)

// warren: a consumer on the reader. When relay-server moves a packet from
// one connection to another, the packet is read on one goroutine and
// written on another (the transport's read loop, the mux loop, a copy
// goroutine): on two busy cores that puts the write on the other core,
// where each of the packet's 255 KiB is a cache miss, and each hand-off is
// a wake-up. Profiles showed copy_from_user costing nearly twice as much
// as on one core (GOMAXPROCS=1), and the three processes of a V2 tunnel
// using a fifth more CPU per GiB. So after a "none" key exchange the mux
// loop reads the packets itself (handOverReads), and a consumer that asks
// for it (SetDataNotifyInline) runs on the mux loop right after the packet
// that gave it data: read, dispatch and write on one goroutine, as a plain
// proxy does. A consumer that takes longer than handOffAfter (its
// destination is slow) gets a watchdog's hand-off: the mux loop goes on
// reading on another goroutine, so one slow consumer does not hold up the
// connection's other channels for more than that.

// handOffAfter is how long a consumer may run on the reader before the
// connection goes on reading on another goroutine: what one slow
// destination can delay the connection's other channels by, once per burst
// (after a hand-off the slow consumer drains on its own goroutine). At 1
// ms, a busy loopback tunnel handed off on most packets.
const handOffAfter = 5 * time.Millisecond

// muxInline is a mux's state for consumers run on its loop.
type muxInline struct {
	// state is the loop's epoch<<1, | 1 while a consumer runs on it. The
	// watchdog's hand-off and the consumer's return race for it with
	// compare-and-swap: exactly one wins, so two loops never read at once.
	state atomic.Uint64
	// since is when the running consumer started (sinceStart).
	since atomic.Int64
	// ticking is set while the watchdog timer is armed: it ticks while
	// consumers run, not once per packet (a timer reset per packet woke
	// the runtime's network poller each time).
	ticking  atomic.Bool
	watchdog *time.Timer
	// due are the consumers the packet being handled made due; only the
	// loop that reads touches it.
	due []func()
	// closing is set when the loop has ended: consumers run on workers.
	closing atomic.Bool
}

// monoStart is the origin of sinceStart.
var monoStart = time.Now()

// sinceStart is a monotonic clock reading.
func sinceStart() int64 { return int64(time.Since(monoStart)) }

// loopEpoch returns the epoch of the mux loop that starts now.
func (m *mux) loopEpoch() uint64 { return m.inline.state.Load() >> 1 }

// afterPacket has fn run on the mux loop once the packet being handled is
// done (runDue). A parked session's loop, or one that has ended, runs fn
// on a worker instead. It is called on the mux loop (by a channel's
// buffer, while the loop handles a packet) or at its end.
func (m *mux) afterPacket(fn func()) {
	if m.parked || m.inline.closing.Load() {
		runLoop(fn)
		return
	}
	m.inline.due = append(m.inline.due, fn)
}

// runDue runs the consumers the last packet made due, each watched. It
// reports whether the loop of epoch was handed off meanwhile: another
// goroutine reads now, and this one must end its loop.
func (m *mux) runDue(epoch uint64) bool {
	due := m.inline.due
	if len(due) == 0 {
		return false
	}
	m.inline.due = nil // a loop that takes over appends to its own
	for i, fn := range due {
		if !m.watch(epoch, fn) {
			for _, fn := range due[i+1:] {
				fn() // not the reader any more: waiting is harmless
			}
			return true
		}
	}
	clear(due)
	m.inline.due = due[:0]
	return false
}

// watch runs fn under the watchdog; false if the watchdog handed the
// reading off before fn returned.
func (m *mux) watch(epoch uint64, fn func()) bool {
	if m.inline.watchdog == nil {
		// Made before the state below is stored: the loop that a hand-off
		// starts reads the field.
		m.inline.watchdog = time.AfterFunc(time.Hour, m.tick)
		m.inline.watchdog.Stop()
	}
	in := epoch<<1 | 1
	m.inline.since.Store(sinceStart())
	m.inline.state.Store(in)
	if m.inline.ticking.CompareAndSwap(false, true) {
		m.inline.watchdog.Reset(handOffAfter)
	}
	fn()
	return m.inline.state.CompareAndSwap(in, epoch<<1)
}

// tick is the watchdog: when a consumer has run for handOffAfter, the next
// epoch's loop starts on a worker; while consumers keep running it ticks
// again, and it stops once it finds the loop reading. A consumer that
// starts while it stops sees ticking clear and arms it, or tick sees the
// consumer and goes on: every running consumer is watched.
func (m *mux) tick() {
	for {
		if s := m.inline.state.Load(); s&1 == 1 {
			age := time.Duration(sinceStart() - m.inline.since.Load())
			if age < handOffAfter {
				m.inline.watchdog.Reset(handOffAfter - age)
				return
			}
			if m.inline.state.CompareAndSwap(s, (s>>1+1)<<1) {
				runLoop(m.loop)
			}
		}
		m.inline.ticking.Store(false)
		if m.inline.state.Load()&1 == 0 || !m.inline.ticking.CompareAndSwap(false, true) {
			return
		}
	}
}

// SetDataNotifyInline is SetDataNotify for an fn that may block (a
// consumer that writes what it takes): fn runs on the connection's mux
// loop right after the packet that queued data (or its end), so that the
// data is written on the goroutine, and the core, that read it. Should fn
// run longer than handOffAfter (5 ms), the connection goes on reading on
// another goroutine, so that one slow destination does not hold up the
// connection's other channels. For data already queued, and on a session
// that parks, fn runs on a worker goroutine. After a hand-off, fn may be
// called again before an earlier call has returned: like a SetDataNotify
// func, it must see to it that one consumer runs at a time (pipe counts
// its calls). A nil fn stops the calls. (warren)
func (c *channel) SetDataNotifyInline(fn func()) {
	if fn == nil {
		c.setNotify(nil, nil)
		return
	}
	m := c.mux
	c.setNotify(func() { m.afterPacket(fn) }, func() { runLoop(fn) })
}

// handOverReads ends the read loop once a "none" key exchange is done (on
// a connection whose loops do not park): from then on readPacket reads
// each packet on its caller's goroutine (the mux loop) instead of
// receiving it from the read loop. The read loop exists to run key
// re-exchanges apart from the mux; a "none" session has no keys, and a
// re-exchange the peer starts anyway is handled the same way, from
// whichever goroutine reads its KEXINIT. It reports whether the read loop
// must return; incoming is then closed, after the packets the mux has yet
// to take.
func (t *handshakeTransport) handOverReads() bool {
	if !t.noneKex.Load() || t.idle != nil || debugHandshake {
		return false
	}
	t.inlineReads.Store(true)
	close(t.incoming)
	return true
}

// readInline is readPacket once the read loop has handed reading over: the
// read loop's body, on the caller's goroutine. One goroutine reads at a
// time (the mux loop, or before it the handshake).
func (t *handshakeTransport) readInline() ([]byte, error) {
	for t.readError == nil {
		p, err := t.readOnePacket(false)
		if err != nil {
			t.readError = err
			t.recordWriteError(err) // stop writers too, as the read loop does
			close(t.startKex)
			break
		}
		if p[0] != msgIgnore && p[0] != msgDebug {
			return p, nil
		}
	}
	return nil, t.readError
}
