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
		r.up(ws[i])
	}
	a := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1}
	b := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2}
	// A claims all four and stripes over them.
	seen := map[int]bool{}
	for range 8 {
		seen[r.pick(a).id] = true
	}
	if len(seen) != 4 {
		t.Fatalf("A striped over %v", seen)
	}
	// B takes one from A.
	wb := r.pick(b)
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
	r.up(wb)
	if got := r.pick(b); got != wb {
		t.Fatalf("B claimed %v, want the freed worker", got)
	}
	// A idles past the expiry: its workers are freed and B's next datagram
	// claims them.
	now = now.Add(100 * time.Second)
	r.pick(b)
	now = now.Add(100 * time.Second)
	if n := r.expire(); n != 1 {
		t.Fatalf("expired %d bindings, want 1 (A)", n)
	}
	r.pick(b)
	if got := len(r.workersOf(b.String())); got != 4 {
		t.Fatalf("B holds %d workers after A expired, want 4", got)
	}
	// A new peer C takes one from B, the richest.
	c := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3}
	if w := r.pick(c); w == nil || len(r.workersOf(b.String())) != 3 {
		t.Fatal("C could not take a worker from B")
	}
	// With every peer down to one worker, a further peer gets nothing.
	r2 := newRouter(time.Minute)
	one := &worker{id: 9}
	r2.up(one)
	r2.pick(a)
	if w := r2.pick(b); w != nil {
		t.Fatalf("B got worker %d that A needs", w.id)
	}
}
