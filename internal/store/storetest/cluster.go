package storetest

import (
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

func node(id, instance string, renewed time.Duration, lease time.Duration) *store.Node {
	return &store.Node{
		ID: id, Instance: instance, InternalURL: "http://" + id + ".internal:8081",
		PublicURL: "https://" + id + ".example.test", Started: t0,
		Renewed: at(renewed), Expires: at(renewed + lease),
	}
}

func sameNode(t *testing.T, got, want *store.Node) {
	t.Helper()
	if got == nil {
		t.Fatalf("node %q: got nil", want.ID)
	}
	sameTime(t, "node "+want.ID+" Started", got.Started, want.Started)
	sameTime(t, "node "+want.ID+" Renewed", got.Renewed, want.Renewed)
	sameTime(t, "node "+want.ID+" Expires", got.Expires, want.Expires)
	g, w := got.Clone(), want.Clone()
	g.Started, g.Renewed, g.Expires = time.Time{}, time.Time{}, time.Time{}
	w.Started, w.Renewed, w.Expires = time.Time{}, time.Time{}, time.Time{}
	sameValue(t, "node "+want.ID, g, w)
}

func sameHoldings(t *testing.T, what string, got, want store.Holdings) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %+v, want %+v", what, got, want)
	}
}

func nodeID(n *store.Node) string { return n.ID }

// hold gives node one endpoint (on tunnel "t"), one wing and one ticket,
// each named after the node.
func hold(t *testing.T, s store.Store, nodeID string) {
	t.Helper()
	ctx := t.Context()
	must(t, s.PutEndpoint(ctx, endpoint("t", "host-"+nodeID, nodeID)))
	_, err := s.PutWingRegistration(ctx, &store.WingRegistration{WingID: "wing-" + nodeID, Node: nodeID, Updated: t0})
	must(t, err)
	_, err = s.ClaimTicket(ctx, &store.TicketClaim{TicketID: "ticket-" + nodeID, Node: nodeID, Created: t0})
	must(t, err)
}

var one = store.Holdings{Endpoints: 1, Wings: 1, Tickets: 1}

func testNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	ns, err := s.ListNodes(ctx)
	must(t, err)
	if len(ns) != 0 {
		t.Errorf("empty store lists %d nodes", len(ns))
	}
	for _, bad := range []*store.Node{nil, {Instance: "i"}, {ID: "a"}, {ID: "a\x00", Instance: "i"}} {
		_, err := s.RegisterNode(ctx, bad)
		wantErr(t, fmt.Sprintf("RegisterNode(%+v)", bad), err, store.ErrInvalid)
	}
	must(t, s.CreateTunnel(ctx, tunnel("t", "t")))

	b := node("b", "b1", 0, 15*time.Second)
	a := node("a", "a1", 0, 15*time.Second)
	for _, n := range []*store.Node{b, a} {
		h, err := s.RegisterNode(ctx, n)
		must(t, err)
		sameHoldings(t, "first RegisterNode releases", h, store.Holdings{})
	}
	ns, err = s.ListNodes(ctx)
	must(t, err)
	sameIDs(t, "ListNodes", ids(ns, nodeID), []string{"a", "b"})
	sameNode(t, ns[0], a)

	// Renewal moves the lease, for the registered instance only.
	must(t, s.RenewNode(ctx, "a", "a1", at(5*time.Second), at(20*time.Second)))
	wantErr(t, "RenewNode(wrong instance)", s.RenewNode(ctx, "a", "a0", at(6*time.Second), at(21*time.Second)), store.ErrNotFound)
	wantErr(t, "RenewNode(unknown node)", s.RenewNode(ctx, "z", "z1", t0, t0), store.ErrNotFound)
	ns, err = s.ListNodes(ctx)
	must(t, err)
	want := a.Clone()
	want.Renewed, want.Expires = at(5*time.Second), at(20*time.Second)
	sameNode(t, ns[0], want)

	// A restart registers a new instance: the old one's records are
	// released and its renewals fail from then on.
	hold(t, s, "a")
	hold(t, s, "b")
	a2 := node("a", "a2", 30*time.Second, 15*time.Second)
	a2.Started = at(30 * time.Second)
	h, err := s.RegisterNode(ctx, a2)
	must(t, err)
	sameHoldings(t, "RegisterNode of a restarted node releases", h, one)
	wantErr(t, "RenewNode(superseded instance)", s.RenewNode(ctx, "a", "a1", at(31*time.Second), at(46*time.Second)), store.ErrNotFound)
	must(t, s.RenewNode(ctx, "a", "a2", at(31*time.Second), at(46*time.Second)))
	es, err := s.ListEndpoints(ctx, "t")
	must(t, err)
	sameIDs(t, "endpoints after a's restart", ids(es, endpointID), []string{"host-b-relay"})

	// A clean shutdown deletes the node with what it holds.
	_, err = s.DeregisterNode(ctx, "b", "b0")
	wantErr(t, "DeregisterNode(wrong instance)", err, store.ErrNotFound)
	h, err = s.DeregisterNode(ctx, "b", "b1")
	must(t, err)
	sameHoldings(t, "DeregisterNode releases", h, one)
	_, err = s.DeregisterNode(ctx, "b", "b1")
	wantErr(t, "DeregisterNode twice", err, store.ErrNotFound)
	_, err = s.GetWingRegistration(ctx, "wing-b")
	wantErr(t, "wing of a deregistered node", err, store.ErrNotFound)
	_, err = s.GetTicketClaim(ctx, "ticket-b")
	wantErr(t, "ticket of a deregistered node", err, store.ErrNotFound)
	ns, err = s.ListNodes(ctx)
	must(t, err)
	sameIDs(t, "ListNodes after deregister", ids(ns, nodeID), []string{"a"})
}

func testReapNodes(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("t", "t")))
	// live renews up to 40s; dead's lease ends at 15s; gone never
	// registered (or vanished) but left records.
	for _, n := range []*store.Node{node("live", "l", 0, 15*time.Second), node("dead", "d", 0, 15*time.Second), node("late", "x", 0, 15*time.Second)} {
		_, err := s.RegisterNode(ctx, n)
		must(t, err)
		hold(t, s, n.ID)
	}
	hold(t, s, "gone")
	must(t, s.RenewNode(ctx, "live", "l", at(25*time.Second), at(40*time.Second)))
	must(t, s.RenewNode(ctx, "late", "x", at(10*time.Second), at(25*time.Second)))

	hs, err := s.NodeHoldings(ctx)
	must(t, err)
	if !reflect.DeepEqual(hs, map[string]store.Holdings{"live": one, "dead": one, "late": one, "gone": one}) {
		t.Errorf("NodeHoldings = %+v", hs)
	}

	// Before anyone's lease ends only the unregistered node's records go.
	reaped, h, err := s.ReapNodes(ctx, at(14*time.Second))
	must(t, err)
	sameIDs(t, "reaped at 14s", reaped, nil)
	sameHoldings(t, "released at 14s", h, one)

	// At 25s: dead's lease (15s) and late's (exactly 25s) have ended.
	reaped, h, err = s.ReapNodes(ctx, at(25*time.Second))
	must(t, err)
	sameIDs(t, "reaped at 25s", reaped, []string{"dead", "late"})
	sameHoldings(t, "released at 25s", h, store.Holdings{Endpoints: 2, Wings: 2, Tickets: 2})
	wantErr(t, "RenewNode of a reaped node", s.RenewNode(ctx, "dead", "d", at(26*time.Second), at(41*time.Second)), store.ErrNotFound)
	ns, err := s.ListNodes(ctx)
	must(t, err)
	sameIDs(t, "nodes after reaping", ids(ns, nodeID), []string{"live"})
	hs, err = s.NodeHoldings(ctx)
	must(t, err)
	if !reflect.DeepEqual(hs, map[string]store.Holdings{"live": one}) {
		t.Errorf("NodeHoldings after reaping = %+v", hs)
	}
	es, err := s.ListEndpoints(ctx, "t")
	must(t, err)
	sameIDs(t, "endpoints after reaping", ids(es, endpointID), []string{"host-live-relay"})
	// A new owner is not blocked by the dead node's records.
	c, err := s.ClaimTicket(ctx, &store.TicketClaim{TicketID: "ticket-dead", Node: "live", Created: t0})
	must(t, err)
	if c.Node != "live" {
		t.Errorf("claim of a reaped node's ticket went to %q", c.Node)
	}

	// Racing reapers: each node and record is released exactly once.
	for i := range 8 {
		id := fmt.Sprintf("n%d", i)
		_, err := s.RegisterNode(ctx, node(id, "i", 0, time.Second))
		must(t, err)
		hold(t, s, id)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total store.Holdings
		nodes []string
	)
	for range 6 {
		wg.Go(func() {
			ids, h, err := s.ReapNodes(ctx, at(time.Minute))
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			total, nodes = total.Add(h), append(nodes, ids...)
			mu.Unlock()
		})
	}
	wg.Wait()
	sameHoldings(t, "released by racing reapers", total, store.Holdings{Endpoints: 9, Wings: 9, Tickets: 10}) // n0..n7, and live with ticket-dead
	if len(nodes) != 9 {                                                                                      // n0..n7 and live, whose lease ended at 40s
		t.Errorf("racing reapers reaped %q, want 9 nodes once each", nodes)
	}
}

func testWingRegistrations(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetWingRegistration(ctx, "w")
	wantErr(t, "GetWingRegistration(none)", err, store.ErrNotFound)
	for _, bad := range []*store.WingRegistration{nil, {Node: "a"}, {WingID: "w"}, {WingID: "w", Node: "\xff"}} {
		_, err := s.PutWingRegistration(ctx, bad)
		wantErr(t, fmt.Sprintf("PutWingRegistration(%+v)", bad), err, store.ErrInvalid)
	}
	prev, err := s.PutWingRegistration(ctx, &store.WingRegistration{WingID: "w", Node: "a", Updated: t0})
	must(t, err)
	if prev != "" {
		t.Errorf("first registration: previous node %q, want none", prev)
	}
	// The wing reconnects through node b: the registration moves.
	prev, err = s.PutWingRegistration(ctx, &store.WingRegistration{WingID: "w", Node: "b", Updated: at(time.Second)})
	must(t, err)
	if prev != "a" {
		t.Errorf("move to b: previous node %q, want a", prev)
	}
	r, err := s.GetWingRegistration(ctx, "w")
	must(t, err)
	if r.WingID != "w" || r.Node != "b" {
		t.Errorf("GetWingRegistration = %+v, want on b", r)
	}
	sameTime(t, "registration Updated", r.Updated, at(time.Second))
	// a's old connection closing does not drop b's registration.
	wantErr(t, "DeleteWingRegistration by the old node", s.DeleteWingRegistration(ctx, "w", "a"), store.ErrNotFound)
	must(t, s.DeleteWingRegistration(ctx, "w", "b"))
	_, err = s.GetWingRegistration(ctx, "w")
	wantErr(t, "GetWingRegistration after delete", err, store.ErrNotFound)
}

func testTicketClaims(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetTicketClaim(ctx, "tk")
	wantErr(t, "GetTicketClaim(none)", err, store.ErrNotFound)
	for _, bad := range []*store.TicketClaim{nil, {Node: "a"}, {TicketID: "tk"}} {
		_, err := s.ClaimTicket(ctx, bad)
		wantErr(t, fmt.Sprintf("ClaimTicket(%+v)", bad), err, store.ErrInvalid)
	}
	c, err := s.ClaimTicket(ctx, &store.TicketClaim{TicketID: "tk", Node: "a", Created: t0})
	must(t, err)
	if c.Node != "a" {
		t.Errorf("first claim = %+v", c)
	}
	c, err = s.ClaimTicket(ctx, &store.TicketClaim{TicketID: "tk", Node: "b", Created: at(time.Second)})
	must(t, err)
	if c.Node != "a" {
		t.Errorf("second claim = %+v, want a's", c)
	}
	sameTime(t, "claim Created", c.Created, t0)
	wantErr(t, "DeleteTicketClaim by another node", s.DeleteTicketClaim(ctx, "tk", "b"), store.ErrNotFound)
	must(t, s.DeleteTicketClaim(ctx, "tk", "a"))
	_, err = s.GetTicketClaim(ctx, "tk")
	wantErr(t, "GetTicketClaim after delete", err, store.ErrNotFound)

	const n = 16
	winners := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := s.ClaimTicket(ctx, &store.TicketClaim{TicketID: "race", Node: fmt.Sprintf("n%d", i), Created: t0})
			if err != nil {
				t.Error(err)
				return
			}
			winners[i] = c.Node
		})
	}
	wg.Wait()
	for i, w := range winners {
		if w != winners[0] {
			t.Fatalf("claimant %d saw %q, claimant 0 saw %q", i, w, winners[0])
		}
	}
}

func testCheck(t *testing.T, s store.Store) {
	must(t, s.Check(t.Context()))
}
