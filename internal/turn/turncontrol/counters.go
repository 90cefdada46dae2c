package turncontrol

import (
	"bytes"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Counters are a session's warren_runtime_* series, read from its own
// registry.
type Counters struct {
	// ForwardedPackets, ForwardedBytes and DroppedPackets are by
	// direction (local_to_relay, relay_to_local).
	ForwardedPackets map[string]uint64 `json:"forwarded_packets"`
	ForwardedBytes   map[string]uint64 `json:"forwarded_bytes"`
	DroppedPackets   map[string]uint64 `json:"dropped_packets"`
	ActiveWorkers    int               `json:"active_workers"`
	// TransportFailures are worker failures after ready, by stage.
	TransportFailures map[string]uint64 `json:"transport_failures"`
	AllocationChecks  uint64            `json:"allocation_checks"`
}

func countersOf(g prometheus.Gatherer) Counters {
	c := Counters{ForwardedPackets: map[string]uint64{}, ForwardedBytes: map[string]uint64{},
		DroppedPackets: map[string]uint64{}, TransportFailures: map[string]uint64{}}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		name := strings.TrimPrefix(mf.GetName(), "warren_runtime_")
		for _, m := range mf.GetMetric() {
			switch name {
			case "forwarded_packets_total":
				c.ForwardedPackets[label(m, "direction")] = uint64(m.GetCounter().GetValue())
			case "forwarded_bytes_total":
				c.ForwardedBytes[label(m, "direction")] = uint64(m.GetCounter().GetValue())
			case "dropped_packets_total":
				c.DroppedPackets[label(m, "direction")] = uint64(m.GetCounter().GetValue())
			case "transport_stage_failures_total":
				c.TransportFailures[label(m, "stage")] = uint64(m.GetCounter().GetValue())
			case "active_workers":
				c.ActiveWorkers = int(m.GetGauge().GetValue())
			case "allocation_checks_total":
				c.AllocationChecks = uint64(m.GetCounter().GetValue())
			}
		}
	}
	return c
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// metricsText is the registry in the Prometheus text format.
func metricsText(g prometheus.Gatherer) string {
	mfs, err := g.Gather()
	if err != nil {
		return ""
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&buf, mf)
	}
	return buf.String()
}
