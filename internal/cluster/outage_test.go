package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// TestPostgresRestartKeepsLeases: two running members on a private
// PostgreSQL that stops for three leases. Both turn not ready at once and
// ready again by themselves once it is back; a plain outage is no lost
// lease: neither calls LeaseLost (which would drop every host and wing),
// neither reaps the other, and what they held is still recorded.
func TestPostgresRestartKeepsLeases(t *testing.T) {
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const lease = time.Second
	var lost atomic.Int32
	members := map[string]*Member{}
	for _, id := range []string{"a", "b"} {
		m, err := New(Config{Store: openPG(t, dsn), NodeID: id, InternalURL: "http://127.0.0.1:1", Lease: lease,
			LeaseLost: func() { lost.Add(1) }}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Register(ctx); err != nil {
			t.Fatal(err)
		}
		members[id] = m
	}
	st := members["a"].cfg.Store
	now := time.Now()
	if err := st.CreateTunnel(ctx, &store.Tunnel{ID: "t", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.PutEndpoint(ctx, &store.Endpoint{TunnelID: "t", ID: "h-relay", Node: "a", Updated: now}); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Go(func() { m.Run(runCtx) })
	}
	defer func() { stop(); wg.Wait() }()
	// Each has held its lease long enough to reap.
	time.Sleep(2 * lease)

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both not ready", func() bool { return !members["a"].Ready() && !members["b"].Ready() })
	if members["a"].Err() == nil {
		t.Error("Err() is nil while the store is down")
	}
	time.Sleep(3 * lease)
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both ready again", func() bool { return members["a"].Ready() && members["b"].Ready() })
	// Long enough for either to have held its lease a full lease again
	// and reaped.
	time.Sleep(2 * lease)
	for id, m := range members {
		if !m.Ready() || m.Err() != nil {
			t.Errorf("%s: ready %v, err %v", id, m.Ready(), m.Err())
		}
		if n := testutil.ToFloat64(m.m.lost); n != 0 {
			t.Errorf("%s: lease_lost_total = %v", id, n)
		}
		if n := testutil.ToFloat64(m.m.reaped); n != 0 {
			t.Errorf("%s: nodes_reaped_total = %v", id, n)
		}
		if n := testutil.ToFloat64(m.m.failures); n == 0 {
			t.Errorf("%s: no lease failure counted during the outage", id)
		}
	}
	if n := lost.Load(); n != 0 {
		t.Errorf("LeaseLost called %d times over a PostgreSQL restart", n)
	}
	if ns, err := st.ListNodes(ctx); err != nil || len(ns) != 2 {
		t.Errorf("nodes after the restart: %v, %v", ns, err)
	}
	if es, err := st.ListEndpoints(ctx, "t"); err != nil || len(es) != 1 || es[0].Node != "a" {
		t.Errorf("endpoints after the restart: %v, %v", es, err)
	}
}
