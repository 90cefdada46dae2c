// Package metrics holds what every warren binary's Prometheus registry
// shares: the Go and process collectors and warren_build_info.
//
// Each engine registers its own collectors on the registry it is given;
// nothing here is global, so several engines (or tests) can run in one
// process.
package metrics

import (
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/warrenhq/warren/internal/buildinfo"
)

// Namespace prefixes every warren metric.
const Namespace = "warren"

// NewRegistry returns a registry with the Go runtime and process collectors
// and warren_build_info{binary,version,commit,goversion} = 1.
func NewRegistry(binary string) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	info := buildinfo.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace,
		Name:      "build_info",
		Help:      "Build of the running binary; always 1.",
	}, []string{"binary", "version", "commit", "goversion"})
	build.WithLabelValues(binary, info.Version, info.Commit, info.GoVersion).Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
	)
	return reg
}

// Handler serves the registry in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Serve serves reg's metrics on GET /metrics of ln, for binaries whose
// only HTTP surface is their metrics (--metrics-listen), until stop is
// called. The caller opens ln, so a bad address fails where it is named.
func Serve(ln net.Listener, reg *prometheus.Registry) (stop func()) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }
}
