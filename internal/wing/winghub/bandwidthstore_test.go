package winghub

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// mapUsage is a UsageStore in a map; failing makes every add fail.
type mapUsage struct {
	mu      sync.Mutex
	m       map[usageKey]int64
	failing bool
}

func (s *mapUsage) AddUsage(_ context.Context, user, month string, delta int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return 0, errors.New("store down")
	}
	s.m[usageKey{user, month}] += delta
	return s.m[usageKey{user, month}], nil
}

func (s *mapUsage) ListUsage(_ context.Context, month string) (map[string]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int64{}
	for k, v := range s.m {
		if k.month == month {
			out[k.user] = v
		}
	}
	return out, nil
}

func (s *mapUsage) PruneUsage(_ context.Context, before string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k := range s.m {
		if k.month < before {
			delete(s.m, k)
			n++
		}
	}
	return n, nil
}

func (s *mapUsage) get(user, month string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[usageKey{user, month}]
}

func usageHub(t *testing.T, st UsageStore, cap int64) *Hub {
	t.Helper()
	h, err := New(Config{VerifyWing: func(string) (WingIdentity, error) { return WingIdentity{}, nil },
		VerifyUser: func(string) (UserIdentity, error) { return UserIdentity{}, nil },
		Bandwidth:  Bandwidth{MonthlyCap: cap}, Usage: st, UsageFlush: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// TestUsageSurvivesRestart: charges reach the store when the hub closes,
// and a new hub on the same store starts from them, cap included.
func TestUsageSurvivesRestart(t *testing.T) {
	st := &mapUsage{m: map[usageKey]int64{}}
	month := time.Now().UTC().Format("2006-01")
	st.m[usageKey{"old", "2020-01"}] = 1 << 30 // over a year ago: pruned
	lastMonth := time.Now().UTC().AddDate(0, -1, 0).Format("2006-01")
	st.m[usageKey{"old", lastMonth}] = 1 << 30 // another month: kept, not loaded

	h := usageHub(t, st, 1000)
	if st.get("old", "2020-01") != 0 || st.get("old", lastMonth) != 1<<30 {
		t.Fatal("pruning removed the wrong months")
	}
	if _, ok := h.bw.take("alice", 600); !ok {
		t.Fatal("600 of 1000 refused")
	}
	h.bw.take("bob", 10)
	h.Close()
	if got := st.get("alice", month); got != 600 {
		t.Fatalf("stored usage after close = %d, want 600", got)
	}

	h2 := usageHub(t, st, 1000)
	if got := h2.Usage("alice"); got != 600 {
		t.Fatalf("usage after restart = %d, want 600", got)
	}
	if got := h2.Usage("old"); got != 0 {
		t.Fatalf("another month's usage loaded: %d", got)
	}
	if _, ok := h2.bw.take("alice", 500); ok {
		t.Fatal("1100 of 1000 accepted after a restart")
	}
	h2.FlushUsage(t.Context())
	if got := st.get("alice", month); got != 1100 {
		t.Fatalf("stored usage after flush = %d, want 1100", got)
	}
}

// TestUsageFlushRetries: a failed write is kept and added at the next
// flush; the store's total (other nodes' charges included) becomes the
// meter's count.
func TestUsageFlushRetries(t *testing.T) {
	st := &mapUsage{m: map[usageKey]int64{}}
	month := time.Now().UTC().Format("2006-01")
	h := usageHub(t, st, 1<<40)
	h.bw.take("alice", 100)
	st.failing = true
	h.FlushUsage(t.Context())
	st.failing = false
	h.bw.take("alice", 5)
	st.mu.Lock()
	st.m[usageKey{"alice", month}] += 1000 // another node's charges
	st.mu.Unlock()
	h.FlushUsage(t.Context())
	if got := st.get("alice", month); got != 1105 {
		t.Fatalf("stored = %d, want 1105", got)
	}
	if got := h.Usage("alice"); got != 1105 {
		t.Fatalf("meter = %d, want the store's 1105", got)
	}
}
