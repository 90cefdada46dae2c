package storetest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// testBandwidth: adds accumulate per (user, month) and return the total;
// bad input is ErrInvalid; listing is per month, ordered by user; old months
// can be pruned.
func testBandwidth(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetBandwidthUsage(ctx, "alice", "2026-03")
	wantErr(t, "GetBandwidthUsage(nothing)", err, store.ErrNotFound)

	for _, bad := range []struct {
		user, month string
		delta       int64
	}{{"", "2026-03", 1}, {"alice", "2026-3", 1}, {"alice", "march", 1}, {"alice", "2026-13", 1},
		{"alice", "2026-03", -1}, {"a\x00b", "2026-03", 1}, {"\xff", "2026-03", 1}} {
		_, err := s.AddBandwidthUsage(ctx, bad.user, bad.month, bad.delta, t0)
		wantErr(t, fmt.Sprintf("AddBandwidthUsage(%q, %q, %d)", bad.user, bad.month, bad.delta), err, store.ErrInvalid)
	}
	_, err = s.DeleteBandwidthUsageBefore(ctx, "soon")
	wantErr(t, "DeleteBandwidthUsageBefore(bad month)", err, store.ErrInvalid)

	add := func(user, month string, delta int64, when time.Time, want int64) {
		t.Helper()
		got, err := s.AddBandwidthUsage(ctx, user, month, delta, when)
		must(t, err)
		if got != want {
			t.Errorf("AddBandwidthUsage(%s, %s, %d) = %d, want %d", user, month, delta, got, want)
		}
	}
	add("alice", "2026-03", 100, at(0), 100)
	add("alice", "2026-03", 50, at(time.Minute), 150)
	add("alice", "2026-03", 0, at(2*time.Minute), 150)
	add("alice", "2026-02", 7, at(0), 7)
	add("bob", "2026-03", 1<<40, at(0), 1<<40) // beyond 32 bits
	add("carol", "2026-03", 1, at(0), 1)

	u, err := s.GetBandwidthUsage(ctx, "alice", "2026-03")
	must(t, err)
	if u.UserID != "alice" || u.Month != "2026-03" || u.Bytes != 150 {
		t.Errorf("GetBandwidthUsage = %+v", u)
	}
	sameTime(t, "usage Updated", u.Updated, at(2*time.Minute))

	list, err := s.ListBandwidthUsage(ctx, "2026-03")
	must(t, err)
	sameIDs(t, "ListBandwidthUsage(2026-03)", ids(list, func(u *store.BandwidthUsage) string { return u.UserID }), []string{"alice", "bob", "carol"})
	if len(list) == 3 && (list[0].Bytes != 150 || list[1].Bytes != 1<<40 || list[2].Bytes != 1) {
		t.Errorf("ListBandwidthUsage bytes = %d %d %d", list[0].Bytes, list[1].Bytes, list[2].Bytes)
	}
	list, err = s.ListBandwidthUsage(ctx, "2025-12")
	must(t, err)
	if len(list) != 0 {
		t.Errorf("ListBandwidthUsage(empty month) = %d records", len(list))
	}

	n, err := s.DeleteBandwidthUsageBefore(ctx, "2026-03")
	must(t, err)
	if n != 1 {
		t.Errorf("DeleteBandwidthUsageBefore(2026-03) = %d, want 1", n)
	}
	_, err = s.GetBandwidthUsage(ctx, "alice", "2026-02")
	wantErr(t, "GetBandwidthUsage(pruned)", err, store.ErrNotFound)
	if u, err := s.GetBandwidthUsage(ctx, "alice", "2026-03"); err != nil || u.Bytes != 150 {
		t.Errorf("usage of the kept month after pruning: %+v, %v", u, err)
	}

	// Concurrent adds all count.
	var wg sync.WaitGroup
	const workers, each = 8, 10
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.AddBandwidthUsage(ctx, "dave", "2026-03", 3, t0); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if u, err := s.GetBandwidthUsage(ctx, "dave", "2026-03"); err != nil || u.Bytes != workers*each*3 {
		t.Errorf("concurrent adds: %+v, %v; want %d bytes", u, err, workers*each*3)
	}
}
