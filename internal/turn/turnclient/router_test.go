package turnclient

import (
	"net"
	"testing"
	"time"
)

func TestRouterExclusiveBindings(t *testing.T) {
	r := newRouter(180 * time.Second)
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	ws := make([]*worker, 4)
	for i := range ws {
		ws[i] = &worker{id: i}
		r.up(ws[i], false)
	}
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	// A claims all four and stripes over them.
	seen := map[int]bool{}
	for range 8 {
		w, _ := r.pick(a)
		seen[w.id] = true
	}
	if len(seen) != 4 {
		t.Fatalf("A striped over %v", seen)
	}
	// B takes one from A.
	wb, _ := r.pick(b)
	if wb == nil || r.ownerOf(wb).String() != b.String() || len(r.workersOf(a.String())) != 3 {
		t.Fatalf("B got %v, A holds %v", wb, r.workersOf(a.String()))
	}
	for _, w := range ws {
		if o := r.ownerOf(w); o == nil {
			t.Fatalf("worker %d unowned", w.id)
		}
	}
	// A worker going down leaves its binding; coming back it is free for the next sender.
	r.down(wb)
	if r.ownerOf(wb) != nil {
		t.Fatal("down worker still owned")
	}
	r.up(wb, false)
	if got, _ := r.pick(b); got != wb {
		t.Fatalf("B claimed %v, want the freed worker", got)
	}
	// A idles past the expiry: its workers are freed and B's next datagram
	// claims them.
	now = now.Add(100 * time.Second)
	r.pick(b)
	now = now.Add(100 * time.Second)
	if n := len(r.expire()); n != 1 {
		t.Fatalf("expired %d bindings, want 1 (A)", n)
	}
	r.pick(b)
	if got := len(r.workersOf(b.String())); got != 4 {
		t.Fatalf("B holds %d workers after A expired, want 4", got)
	}
	// A new peer C takes one from B, the richest.
	c := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3}
	if w, _ := r.pick(c); w == nil || len(r.workersOf(b.String())) != 3 {
		t.Fatal("C could not take a worker from B")
	}
}

// With every raw worker held by a peer that has just one, a new sender
// (a roaming endpoint) takes over the worker of the least recently active
// peer at once, and the replies follow it.
func TestRouterRoamingTakeover(t *testing.T) {
	r := newRouter(time.Minute)
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	w0, w1 := &worker{id: 0}, &worker{id: 1}
	r.up(w0, false)
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	c := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3}
	r.pick(a)
	now = now.Add(time.Second)
	if w, _ := r.pick(b); w != w0 || r.ownerOf(w0).String() != b.String() {
		t.Fatalf("B got %v, owner %v; want the worker taken over from A", w, r.ownerOf(w0))
	}
	r.up(w1, false)
	now = now.Add(time.Second)
	if w, _ := r.pick(a); w != w1 {
		t.Fatalf("A got %v, want the new unbound worker", w)
	}
	// C arrives: A (seen at t=2) and B (t=1) hold one each; B is older.
	now = now.Add(time.Second)
	if w, _ := r.pick(c); w != w0 || r.ownerOf(w0).String() != c.String() || r.ownerOf(w1).String() != a.String() {
		t.Fatalf("C got %v; owners w0=%v w1=%v", w, r.ownerOf(w0), r.ownerOf(w1))
	}
}

// Framed workers are shared: every peer stripes over all of them with its
// own peer id, and replies are routed by id.
func TestRouterFramedSharing(t *testing.T) {
	r := newRouter(time.Minute)
	now := time.Unix(0, 0)
	r.now = func() time.Time { return now }
	w0 := &worker{id: 0}
	r.up(w0, true)
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	wa, ida := r.pick(a)
	wb, idb := r.pick(b)
	if wa != w0 || wb != w0 || ida == idb || ida == 0 || idb == 0 {
		t.Fatalf("A: %v/%d, B: %v/%d", wa, ida, wb, idb)
	}
	if r.peerAddr(ida).String() != a.String() || r.peerAddr(idb).String() != b.String() || r.ownerOf(w0) != nil {
		t.Fatal("replies not routed by peer id")
	}
	if again, _ := r.pick(a); again != w0 {
		t.Fatal("A lost its worker")
	}
	if _, id := r.pick(a); id != ida {
		t.Fatalf("A's id changed: %d → %d", ida, id)
	}
	now = now.Add(2 * time.Minute)
	if ids := r.expire(); len(ids) != 2 || r.peerAddr(ida) != nil {
		t.Fatalf("expired %v", ids)
	}
	if got := r.framedWorkers(); len(got) != 1 || got[0] != w0 {
		t.Fatalf("framed workers %v", got)
	}
}
