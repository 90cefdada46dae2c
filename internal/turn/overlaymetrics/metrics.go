package overlaymetrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/metrics"
)

// Directions of forwarded traffic.
const (
	LocalToRelay     = "local_to_relay"
	RelayToLocal     = "relay_to_local"
	ClientToUpstream = "client_to_upstream"
	UpstreamToClient = "upstream_to_client"
)

// Labels are the fixed labels of one runtime.
type Labels struct {
	Runtime  string // client or server
	Provider string // provider name; "none" on the server
	TURNMode string // udp or tcp
	PeerMode string // dtls or plain
}

// Metrics are one runtime's series. A nil *Metrics records nothing.
type Metrics struct {
	SessionStarts    prometheus.Counter
	SessionFailures  *prometheus.CounterVec // stage
	StartupFailures  *prometheus.CounterVec // stage
	TransportFailure *prometheus.CounterVec // stage
	ActiveWorkers    prometheus.Gauge
	Packets          *prometheus.CounterVec // direction
	Bytes            *prometheus.CounterVec // direction
	Dropped          *prometheus.CounterVec // direction
	// AllocationChecks counts the client's periodic TURN allocation checks
	// that found the allocation held: proof the check runs, where a lost
	// allocation shows as a transport failure (client only).
	AllocationChecks prometheus.Counter
}

func constLabels(kv ...string) prometheus.Labels {
	l := prometheus.Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			l[kv[i]] = kv[i+1]
		}
	}
	return l
}

// New registers the series on reg (nil: a private registry nobody scrapes).
func New(reg prometheus.Registerer, l Labels) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	full := constLabels("runtime", l.Runtime, "provider", l.Provider, "turn_mode", l.TURNMode, "peer_mode", l.PeerMode)
	traffic := constLabels("runtime", l.Runtime, "provider", l.Provider)
	opts := func(name, help string, cl prometheus.Labels) prometheus.Opts {
		return prometheus.Opts{Namespace: metrics.Namespace, Subsystem: "runtime", Name: name, Help: help, ConstLabels: cl}
	}
	m := &Metrics{
		SessionStarts:    prometheus.NewCounter(prometheus.CounterOpts(opts("session_starts_total", "Sessions started.", full))),
		SessionFailures:  prometheus.NewCounterVec(prometheus.CounterOpts(opts("session_failures_total", "Sessions that failed, by stage.", full)), []string{"stage"}),
		StartupFailures:  prometheus.NewCounterVec(prometheus.CounterOpts(opts("startup_stage_failures_total", "Failures before ready, by stage.", full)), []string{"stage"}),
		TransportFailure: prometheus.NewCounterVec(prometheus.CounterOpts(opts("transport_stage_failures_total", "Transport failures (TURN, DTLS, upstream), by stage.", full)), []string{"stage"}),
		ActiveWorkers:    prometheus.NewGauge(prometheus.GaugeOpts(opts("active_workers", "Ready workers (client) or live sessions (server).", full))),
		Packets:          prometheus.NewCounterVec(prometheus.CounterOpts(opts("forwarded_packets_total", "Forwarded datagrams or stream writes.", traffic)), []string{"direction"}),
		Bytes:            prometheus.NewCounterVec(prometheus.CounterOpts(opts("forwarded_bytes_total", "Forwarded payload bytes.", traffic)), []string{"direction"}),
		Dropped:          prometheus.NewCounterVec(prometheus.CounterOpts(opts("dropped_packets_total", "Datagrams dropped (full queue, no worker, no owner).", traffic)), []string{"direction"}),
		AllocationChecks: prometheus.NewCounter(prometheus.CounterOpts(opts("allocation_checks_total", "Periodic TURN allocation checks that found the allocation held (client).", full))),
	}
	reg.MustRegister(m.SessionStarts, m.SessionFailures, m.StartupFailures, m.TransportFailure, m.ActiveWorkers, m.Packets, m.Bytes, m.Dropped, m.AllocationChecks)
	return m
}

// Forwarded counts one packet of n bytes in direction dir.
func (m *Metrics) Forwarded(dir string, n int) {
	m.Packets.WithLabelValues(dir).Inc()
	m.Bytes.WithLabelValues(dir).Add(float64(n))
}

// Drop counts one dropped datagram.
func (m *Metrics) Drop(dir string) { m.Dropped.WithLabelValues(dir).Inc() }

// Touch makes the labelled series exist at zero so that a scrape shows
// every series from the start.
func (m *Metrics) Touch(dirs ...string) {
	for _, d := range dirs {
		m.Packets.WithLabelValues(d)
		m.Bytes.WithLabelValues(d)
		m.Dropped.WithLabelValues(d)
	}
}
