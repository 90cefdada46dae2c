package probe

import (
	"bytes"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// Metrics exposes reports as Prometheus gauges. Labels are the check name
// and kind (both from the configuration, so bounded) and, for stages, the
// stage name (fixed per kind).
type Metrics struct {
	status   *prometheus.GaugeVec
	success  *prometheus.GaugeVec
	duration *prometheus.GaugeVec
	stage    *prometheus.GaugeVec
	overall  prometheus.Gauge
	lastRun  prometheus.Gauge
	runDur   prometheus.Gauge
}

// NewMetrics registers the probe gauges on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "check_status",
			Help: "Result of the check's last run as a Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."}, []string{"check", "kind"}),
		success: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "check_success",
			Help: "1 if the check's last run was OK, else 0."}, []string{"check", "kind"}),
		duration: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "check_duration_seconds",
			Help: "How long the check's last run took."}, []string{"check", "kind"}),
		stage: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "check_stage_duration_seconds",
			Help: "How long each measured stage of the check's last run took."}, []string{"check", "kind", "stage"}),
		overall: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "status",
			Help: "Worst result of the last run as a Nagios code: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."}),
		lastRun: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "last_run_timestamp_seconds",
			Help: "Unix time at which the last run finished."}),
		runDur: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "probe", Name: "run_duration_seconds",
			Help: "How long the last run of all checks took."}),
	}
	for _, c := range []prometheus.Collector{m.status, m.success, m.duration, m.stage, m.overall, m.lastRun, m.runDur} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Observe replaces the gauges with r's values; checks no longer
// configured disappear.
func (m *Metrics) Observe(r *Report) {
	m.status.Reset()
	m.success.Reset()
	m.duration.Reset()
	m.stage.Reset()
	for _, c := range r.Checks {
		m.status.WithLabelValues(c.Name, c.Kind).Set(float64(c.Status))
		ok := 0.0
		if c.Status == OK {
			ok = 1
		}
		m.success.WithLabelValues(c.Name, c.Kind).Set(ok)
		m.duration.WithLabelValues(c.Name, c.Kind).Set(c.Duration.Seconds())
		for _, s := range c.Stages {
			m.stage.WithLabelValues(c.Name, c.Kind, s.Name).Set(s.Duration.Seconds())
		}
	}
	m.overall.Set(float64(r.Status))
	m.lastRun.Set(float64(r.StartedAt.Add(r.Duration).UnixNano()) / 1e9)
	m.runDur.Set(r.Duration.Seconds())
}

// WriteTextfile writes r's metrics for node_exporter's textfile collector:
// to a temporary file in path's directory, mode 0644, renamed over path,
// so the collector never reads a partial file. path should end in .prom.
func WriteTextfile(path string, r *Report) error {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		return err
	}
	m.Observe(r)
	mfs, err := reg.Gather()
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return err
		}
	}
	if err := writeAtomic(path, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("textfile %s: %w", filepath.Clean(path), err)
	}
	return nil
}
