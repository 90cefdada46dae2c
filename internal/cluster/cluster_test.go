package cluster

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
	"github.com/warrenhq/warren/internal/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openPG(t *testing.T, dsn string) store.Store {
	t.Helper()
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeadNodeReleased: node A registers and takes an endpoint, a wing and
// a ticket, then stops renewing (as a killed process does). Node B, on its
// own connection pool, reaps A once A's lease has ended, and A's records
// are free for B to take.
func TestDeadNodeReleased(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := t.Context()
	stA, stB := openPG(t, dsn), openPG(t, dsn)
	const lease = time.Second

	a, err := New(Config{Store: stA, NodeID: "a", InternalURL: "http://127.0.0.1:1", Lease: lease}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Register(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := stA.CreateTunnel(ctx, &store.Tunnel{ID: "t", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := stA.PutEndpoint(ctx, &store.Endpoint{TunnelID: "t", ID: "h-relay", Node: "a", Updated: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := stA.PutWingRegistration(ctx, &store.WingRegistration{WingID: "w", Node: "a", Updated: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := stA.ClaimTicket(ctx, &store.TicketClaim{TicketID: "k", Node: "a", Created: now}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	b, err := New(Config{Store: stB, NodeID: "b", Lease: lease, Registerer: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Register(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 2 || st.Nodes[0].ID != "a" || st.Nodes[0].Holds != (store.Holdings{Endpoints: 1, Wings: 1, Tickets: 1}) {
		t.Fatalf("status before A dies: %+v", st.Nodes)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { b.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	waitFor(t, "A's records released", func() bool {
		_, err := stB.GetWingRegistration(ctx, "w")
		return errors.Is(err, store.ErrNotFound)
	})
	if es, err := stB.ListEndpoints(ctx, "t"); err != nil || len(es) != 0 {
		t.Errorf("endpoints after A died: %v, %v", es, err)
	}
	if _, err := stB.GetTicketClaim(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ticket claim after A died: %v", err)
	}
	st, err = b.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Nodes) != 1 || st.Nodes[0].ID != "b" || !st.Nodes[0].Alive || !st.Nodes[0].Self {
		t.Errorf("status after A died: %+v", st.Nodes)
	}
	if n := testutil.ToFloat64(b.m.reaped); n != 1 {
		t.Errorf("nodes_reaped_total = %v, want 1", n)
	}
	if n := testutil.ToFloat64(b.m.releasedVec.WithLabelValues("wing")); n != 1 {
		t.Errorf("released_records_total{kind=wing} = %v, want 1", n)
	}
	if !b.Ready() {
		t.Error("B not ready")
	}
	// A comes back from the dead: its renewal finds it reaped, it counts
	// the lost lease and registers again.
	a.renew(ctx)
	if n := testutil.ToFloat64(a.m.lost); n != 1 || !a.Ready() {
		t.Errorf("A after its lease was lost: lost=%v ready=%v", n, a.Ready())
	}
	ns, err := stB.ListNodes(ctx)
	if err != nil || len(ns) != 2 {
		t.Errorf("nodes after A re-registered: %v, %v", ns, err)
	}
}

// TestSingleNodeSQLite: on SQLite the node registers as "local", renews,
// and deregisters on stop, releasing what it held at once.
func TestSingleNodeSQLite(t *testing.T) {
	ctx := t.Context()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	reg := prometheus.NewRegistry()
	m, err := New(Config{Store: db, Lease: time.Second, Registerer: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ClaimTicket(ctx, &store.TicketClaim{TicketID: "k", Node: DefaultNodeID}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { m.Run(runCtx); close(done) }()
	waitFor(t, "a renewal", func() bool { return testutil.ToFloat64(m.m.renewals) >= 1 })
	if !m.Ready() {
		t.Error("not ready after renewing")
	}
	stop()
	<-done
	if ns, err := db.ListNodes(ctx); err != nil || len(ns) != 0 {
		t.Errorf("nodes after stop: %v, %v", ns, err)
	}
	if _, err := db.GetTicketClaim(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ticket claim after stop: %v", err)
	}
	names := []string{}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if got := strings.Join(names, " "); !strings.Contains(got, "warren_cluster_lease_renewals_total") || !strings.Contains(got, "warren_cluster_store_up") {
		t.Errorf("metrics: %s", got)
	}
}
