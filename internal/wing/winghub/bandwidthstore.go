package winghub

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// UsageStore keeps per-user bandwidth usage across relay restarts (and,
// shared by several relay nodes, adds up what each of them metered).
// relay-server backs it with its store.
type UsageStore interface {
	// AddUsage adds delta bytes to user's usage in month ("2006-01", UTC)
	// and returns the new total.
	AddUsage(ctx context.Context, user, month string, delta int64) (int64, error)
	// ListUsage returns every user's usage in month.
	ListUsage(ctx context.Context, month string) (map[string]int64, error)
	// PruneUsage deletes the usage of the months before month.
	PruneUsage(ctx context.Context, before string) (int, error)
}

// usageKeepMonths is how many months of usage the store keeps.
const usageKeepMonths = 13

type usageKey struct{ user, month string }

// defaultUsageFlush is Config.UsageFlush's default.
const defaultUsageFlush = 10 * time.Second

// loadUsage seeds the meter with this month's stored usage, so a user who
// used up the cap before a restart is still over it after.
func (h *Hub) loadUsage(ctx context.Context) {
	m := h.bw
	month := m.now().UTC().Format("2006-01")
	used, err := h.cfg.Usage.ListUsage(ctx, month)
	if err != nil {
		h.log.Warn("could not load bandwidth usage; this month starts over for now", "month", month, "err", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for user, n := range used {
		b := m.users[user]
		if b == nil {
			b = &bucket{tokens: float64(m.cfg.Burst), last: m.now()}
			m.users[user] = b
		}
		b.month, b.used = month, b.used+n
	}
	h.log.Info("bandwidth usage loaded", "month", month, "users", len(used))
	before := m.now().UTC().AddDate(0, -usageKeepMonths, 0).Format("2006-01")
	if n, err := h.cfg.Usage.PruneUsage(ctx, before); err != nil {
		h.log.Warn("could not prune old bandwidth usage", "before", before, "err", err)
	} else if n > 0 {
		h.log.Info("old bandwidth usage pruned", "before", before, "records", n)
	}
}

// usageFlusher writes what was charged to the store every UsageFlush, and
// a last time when the hub closes.
func (h *Hub) usageFlusher() {
	defer close(h.usageDone)
	t := time.NewTicker(h.cfg.UsageFlush)
	defer t.Stop()
	for {
		select {
		case <-h.done:
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			h.flushUsage(ctx)
			cancel()
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), h.cfg.UsageFlush)
			h.flushUsage(ctx)
			cancel()
		}
	}
}

// flushUsage adds the pending charges to the store. A failed add is kept
// for the next flush. The store's total (which includes other nodes'
// charges) becomes the meter's count, plus what was charged meanwhile.
func (h *Hub) flushUsage(ctx context.Context) {
	m := h.bw
	m.mu.Lock()
	batch := m.pending
	m.pending = map[usageKey]int64{}
	m.mu.Unlock()
	for k, n := range batch {
		if n == 0 {
			continue
		}
		total, err := h.cfg.Usage.AddUsage(ctx, k.user, k.month, n)
		m.mu.Lock()
		if err != nil {
			m.pending[k] += n
		} else if b := m.users[k.user]; b != nil && b.month == k.month {
			b.used = total + m.pending[k]
		}
		m.mu.Unlock()
		if err != nil {
			h.usageFlushErrors.Inc()
			h.log.Warn("could not store bandwidth usage; will retry", "user", k.user, "month", k.month, "bytes", n, "err", err)
		}
	}
}

// FlushUsage writes pending bandwidth charges to the usage store now.
func (h *Hub) FlushUsage(ctx context.Context) {
	if h.bw != nil && h.cfg.Usage != nil {
		h.flushUsage(ctx)
	}
}

// startUsage wires the usage store: loads this month, starts the flusher.
func (h *Hub) startUsage() {
	h.usageFlushErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "wing_hub",
		Name: "bandwidth_usage_store_errors_total", Help: "Failed writes of bandwidth usage to the store (retried at the next flush)."})
	if h.cfg.Registerer != nil {
		h.cfg.Registerer.MustRegister(h.usageFlushErrors)
	}
	h.usageDone = make(chan struct{})
	if h.bw == nil || h.cfg.Usage == nil {
		close(h.usageDone)
		return
	}
	if h.cfg.UsageFlush <= 0 {
		h.cfg.UsageFlush = defaultUsageFlush
	}
	h.bw.pending = map[usageKey]int64{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	h.loadUsage(ctx)
	cancel()
	go h.usageFlusher()
}
