package ticket

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes of a ticket: the values of the outcome audit key and metric label.
// The set is fixed so the label's cardinality is too.
const (
	OutcomeOK             = "ok"              // all bytes delivered
	OutcomeTimeout        = "timeout"         // TTL passed with one side waiting (408)
	OutcomeExpired        = "expired"         // TTL passed with no side present
	OutcomeTooLarge       = "too_large"       // upload over max_bytes (413)
	OutcomeUploadFailed   = "upload_failed"   // uploader's body broke or it left
	OutcomeDownloadFailed = "download_failed" // downloader left
	OutcomeIdleTimeout    = "idle_timeout"    // no progress after pairing (504)
	OutcomeAborted        = "aborted"         // relay closed
)

var outcomes = []string{
	OutcomeOK, OutcomeTimeout, OutcomeExpired, OutcomeTooLarge, OutcomeUploadFailed,
	OutcomeDownloadFailed, OutcomeIdleTimeout, OutcomeAborted,
}

type metrics struct {
	active    prometheus.Gauge
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "warren", Subsystem: "ticket", Name: "active",
			Help: "Live relay tickets: minted and not yet finished or expired.",
		}),
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warren", Subsystem: "ticket", Name: "transfers_total",
			Help: "Relay tickets ended, by outcome.",
		}, []string{"outcome"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "warren", Subsystem: "ticket", Name: "bytes_total",
			Help: "Bytes relayed from uploaders to downloaders, counted as they move.",
		}),
	}
	// Materialise every outcome so dashboards see zeros, not gaps.
	for _, o := range outcomes {
		m.transfers.WithLabelValues(o)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.transfers, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("ticket: register metrics: %w", err)
		}
	}
	return m, nil
}
