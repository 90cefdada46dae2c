package tunnelclient

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	connected         prometheus.Gauge
	conns             prometheus.Counter
	active            prometheus.Gauge
	bytesIn, bytesOut prometheus.Counter
	retries           prometheus.Counter
	e2eStreams        prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warren_tunnel_client_connected",
			Help: "1 while the tunnel client has a relay session, else 0.",
		}),
		conns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_tunnel_client_connections_total",
			Help: "Local connections forwarded through the tunnel.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warren_tunnel_client_active_connections",
			Help: "Forwarded local connections currently open.",
		}),
		// Retries show a client that keeps failing to (re)connect, e.g.
		// while the tunnel has no host, where the connected gauge only
		// shows 0.
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_tunnel_client_retries_total",
			Help: "Relay connection attempts (or sessions) that ended with a retryable error and are retried after the backoff.",
		}),
		e2eStreams: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_tunnel_client_e2e_streams_total",
			Help: "Forwarded connections whose stream the host end-to-end encrypted (--e2e, V2).",
		}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warren_tunnel_client_bytes_total",
		Help: "Bytes copied through forwarded connections; out = from the local connection to the tunnel, in = back.",
	}, []string{"direction"})
	m.bytesIn = bytes.WithLabelValues("in")
	m.bytesOut = bytes.WithLabelValues("out")
	for _, c := range []prometheus.Collector{m.connected, m.conns, m.active, m.retries, m.e2eStreams, bytes} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
