package tunnelhost

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	status            *prometheus.GaugeVec
	conns             prometheus.Counter
	bytesIn, bytesOut prometheus.Counter
	active            prometheus.Gauge
	e2eStreams        *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "warren_tunnel_host_status",
			Help: "Connection status of the tunnel host: 1 for the current status, 0 for the others.",
		}, []string{"status"}),
		conns: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_tunnel_host_forwarded_connections_total",
			Help: "Forwarded connections accepted and dialed to a local port.",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "warren_tunnel_host_active_connections",
			Help: "Forwarded connections currently open.",
		}),
		e2eStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_tunnel_host_e2e_streams_total",
			Help: "Forwarded connections whose stream this host end-to-end encrypted (a V2 client's --e2e), by the cipher the inner SSH session negotiated (host to client).",
		}, []string{"cipher"}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "warren_tunnel_host_bytes_total",
		Help: "Bytes copied through forwarded connections; in = from the tunnel to the local port, out = back.",
	}, []string{"direction"})
	m.bytesIn = bytes.WithLabelValues("in")
	m.bytesOut = bytes.WithLabelValues("out")
	for _, c := range []prometheus.Collector{m.status, m.conns, m.active, m.e2eStreams, bytes} {
		if err := r.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) setStatus(s Status) {
	for _, x := range allStatuses {
		v := 0.0
		if x == s {
			v = 1
		}
		m.status.WithLabelValues(string(x)).Set(v)
	}
}
