package cli

import (
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/metrics"
)

// ServeMetrics listens on addr (a binary's metrics_listen) and serves
// reg's /metrics there until stop is called.
func ServeMetrics(addr string, reg *prometheus.Registry) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return metrics.Serve(ln, reg), nil
}
