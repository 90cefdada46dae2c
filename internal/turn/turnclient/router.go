package turnclient

import (
	"net"
	"slices"
	"sync"
	"time"
)

// router routes local datagrams to workers and replies back
// (docs/protocols/turn-overlay.md §3.1). Each local peer (sender address)
// gets a binding with a peer id.
//
// A framed worker (its session negotiated overlay.ALPNFramedUDP) carries
// every peer: datagrams are tagged with the peer id and tunnel-server keeps
// one upstream socket per peer id, so replies come back tagged and go to
// their own peer. All framed workers are shared by all peers.
//
// A raw worker (the compat profile, or a server without framing) cannot
// tell peers apart in its replies, so it is bound to at most one peer at a
// time. A new sender never waits for an idle expiry: it claims unbound
// workers, else one from the peer holding the most (if that holds more
// than one), else it takes over the worker of the least recently active
// peer, as a roaming endpoint (a WireGuard peer whose port changed, an
// application restarted) would on the upstream implementations.
type router struct {
	mu     sync.Mutex
	idle   time.Duration
	now    func() time.Time
	ready  []*worker // ready workers, in id order
	framed map[*worker]bool
	shared []*worker // ready framed workers, in id order
	peers  map[string]*binding
	byID   map[uint32]*binding
	lastID uint32
	owner  map[*worker]*binding // raw workers only
}

type binding struct {
	id       uint32
	addr     net.Addr
	workers  []*worker // raw workers bound to this peer
	next     int
	lastSeen time.Time
}

func newRouter(idle time.Duration) *router {
	return &router{idle: idle, now: time.Now, framed: map[*worker]bool{}, peers: map[string]*binding{},
		byID: map[uint32]*binding{}, owner: map[*worker]*binding{}}
}

// up makes w available for dispatch; framed says whether its session
// carries peer ids.
func (r *router) up(w *worker, framed bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unbindLocked(w)
	r.framed[w] = framed
	if !slices.Contains(r.ready, w) {
		r.ready = append(r.ready, w)
		slices.SortFunc(r.ready, func(a, b *worker) int { return a.id - b.id })
	}
	r.reshareLocked()
}

func (r *router) reshareLocked() {
	r.shared = r.shared[:0]
	for _, w := range r.ready {
		if r.framed[w] {
			r.shared = append(r.shared, w)
		}
	}
}

// down removes w from dispatch and from its binding.
func (r *router) down(w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ready = slices.DeleteFunc(r.ready, func(x *worker) bool { return x == w })
	delete(r.framed, w)
	r.unbindLocked(w)
	r.reshareLocked()
}

func (r *router) unbindLocked(w *worker) {
	b := r.owner[w]
	if b == nil {
		return
	}
	delete(r.owner, w)
	b.workers = slices.DeleteFunc(b.workers, func(x *worker) bool { return x == w })
}

func (r *router) bindLocked(w *worker, b *binding) {
	r.unbindLocked(w)
	r.owner[w] = b
	b.workers = append(b.workers, w)
}

// pick returns the worker for a datagram from addr and addr's peer id, or
// a nil worker to drop it (no worker is ready).
func (r *router) pick(addr net.Addr) (*worker, uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := addr.String()
	b := r.peers[key]
	if b == nil {
		r.lastID++
		for r.byID[r.lastID] != nil || r.lastID == 0 {
			r.lastID++
		}
		b = &binding{id: r.lastID, addr: addr}
		r.peers[key] = b
		r.byID[b.id] = b
	}
	b.lastSeen = r.now()

	if shared := r.shared; len(shared) > 0 {
		b.next %= len(shared)
		w := shared[b.next]
		b.next++
		return w, b.id
	}

	// Raw workers: exclusive bindings.
	for _, w := range r.ready {
		if r.owner[w] == nil {
			r.bindLocked(w, b)
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
			r.bindLocked(rich.workers[len(rich.workers)-1], b)
		}
	}
	if len(b.workers) == 0 {
		// Every worker is held by a peer with just one: the newest sender
		// takes over the one whose peer was active least recently.
		var stale *binding
		for _, o := range r.peers {
			if o != b && len(o.workers) > 0 && (stale == nil || o.lastSeen.Before(stale.lastSeen)) {
				stale = o
			}
		}
		if stale != nil {
			r.bindLocked(stale.workers[0], b)
		}
	}
	if len(b.workers) == 0 {
		return nil, 0
	}
	b.next %= len(b.workers)
	w := b.workers[b.next]
	b.next++
	return w, b.id
}

// ownerOf is the local peer a raw worker's replies go to, or nil.
func (r *router) ownerOf(w *worker) net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.owner[w]; b != nil {
		return b.addr
	}
	return nil
}

// peerAddr is the local address of peer id, or nil (unknown or expired).
func (r *router) peerAddr(id uint32) net.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.byID[id]; b != nil {
		return b.addr
	}
	return nil
}

// expire removes bindings idle for longer than r.idle, frees their
// workers, and returns the expired peer ids.
func (r *router) expire() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	cutoff := r.now().Add(-r.idle)
	var ids []uint32
	for key, b := range r.peers {
		if b.lastSeen.Before(cutoff) {
			for _, w := range b.workers {
				delete(r.owner, w)
			}
			delete(r.peers, key)
			delete(r.byID, b.id)
			ids = append(ids, b.id)
		}
	}
	return ids
}

// framedWorkers returns the ready framed workers.
func (r *router) framedWorkers() []*worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.shared)
}

// workersOf returns the ids of the raw workers bound to addr (for tests).
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
