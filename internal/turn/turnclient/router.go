package turnclient

import (
	"net"
	"slices"
	"sync"
	"time"
)

// router implements the exclusive worker→local-peer bindings of docs/protocols/turn-overlay.md §3.1.
// A worker serves at most one local peer, so tunnel-server's one upstream
// socket per session maps back to exactly one local sender.
type router struct {
	mu    sync.Mutex
	idle  time.Duration
	now   func() time.Time
	ready []*worker // ready workers, in id order
	peers map[string]*binding
	owner map[*worker]*binding
}

type binding struct {
	addr     net.Addr
	workers  []*worker
	next     int
	lastSeen time.Time
}

func newRouter(idle time.Duration) *router {
	return &router{idle: idle, now: time.Now, peers: map[string]*binding{}, owner: map[*worker]*binding{}}
}

// up makes w available (unbound) for dispatch.
func (r *router) up(w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !slices.Contains(r.ready, w) {
		r.ready = append(r.ready, w)
		slices.SortFunc(r.ready, func(a, b *worker) int { return a.id - b.id })
	}
}

// down removes w from dispatch and from its binding.
func (r *router) down(w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = slices.DeleteFunc(r.ready, func(x *worker) bool { return x == w })
	r.unbindLocked(w)
}

func (r *router) unbindLocked(w *worker) {
	b := r.owner[w]
	if b == nil {
		return
	}
	delete(r.owner, w)
	b.workers = slices.DeleteFunc(b.workers, func(x *worker) bool { return x == w })
}

// pick returns the worker for a datagram from addr, or nil to drop it.
func (r *router) pick(addr net.Addr) *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := addr.String()
	b := r.peers[key]
	if b == nil {
		b = &binding{addr: addr}
		r.peers[key] = b
	}
	b.lastSeen = r.now()
	// A ready worker that is unbound (new, restarted, or freed by expiry)
	// goes to the next sender, whoever it is.
	for _, w := range r.ready {
		if r.owner[w] == nil {
			r.owner[w] = b
			b.workers = append(b.workers, w)
		}
	}
	if len(b.workers) == 0 {
		// Take one from the peer holding the most, if it holds more than one.
		var rich *binding
		for _, o := range r.peers {
			if o != b && len(o.workers) > 1 && (rich == nil || len(o.workers) > len(rich.workers)) {
				rich = o
			}
		}
		if rich != nil {
			w := rich.workers[len(rich.workers)-1]
			r.unbindLocked(w)
			r.owner[w] = b
			b.workers = append(b.workers, w)
		}
	}
	if len(b.workers) == 0 {
		return nil
	}
	b.next %= len(b.workers)
	w := b.workers[b.next]
	b.next++
	return w
}

// ownerOf is the local peer w's replies go to, or nil.
func (r *router) ownerOf(w *worker) net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.owner[w]; b != nil {
		return b.addr
	}
	return nil
}

// expire removes bindings idle for longer than r.idle and frees their workers.
func (r *router) expire() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	cutoff := r.now().Add(-r.idle)
	n := 0
	for key, b := range r.peers {
		if b.lastSeen.Before(cutoff) {
			for _, w := range b.workers {
				delete(r.owner, w)
			}
			delete(r.peers, key)
			n++
		}
	}
	return n
}

// workersOf returns the ids of the workers bound to addr (for tests).
func (r *router) workersOf(addr string) []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []int
	if b := r.peers[addr]; b != nil {
		for _, w := range b.workers {
			ids = append(ids, w.id)
		}
	}
	return ids
}
