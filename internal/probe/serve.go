package probe

import (
	"context"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	Interval  time.Duration // between the starts of two runs; default 60s
	Textfile  string        // also write the textfile after each run; "" none
	Artifacts string        // also keep artifacts of failed checks; "" none
	// Registry gets the probe gauges and is served on /metrics; nil: a
	// new registry.
	Registry *prometheus.Registry
	// ProbeInfo goes into artifacts (version, commit).
	ProbeInfo map[string]string
}

// Server runs a Runner on an interval and serves the last report:
// /metrics (Prometheus), / (an HTML status page), /status.json (the -o json
// schema; HTTP 200 when OK or WARNING, 503 otherwise) and /healthz.
type Server struct {
	cfg ServerConfig
	log *slog.Logger
	met *Metrics

	mu     sync.Mutex
	runner *Runner
	last   *Report
	kick   chan struct{}
}

// NewServer builds a Server for runner.
func NewServer(cfg ServerConfig, runner *Runner, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 60 * time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	m, err := NewMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Server{cfg: cfg, log: logger, met: m, runner: runner, kick: make(chan struct{}, 1)}, nil
}

// SetRunner replaces the checks (on reload) and starts a run at once.
func (s *Server) SetRunner(r *Runner) {
	s.mu.Lock()
	s.runner = r
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Last returns the last report, or nil before the first run ends.
func (s *Server) Last() *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// RunOnce runs the checks now and publishes the report.
func (s *Server) RunOnce(ctx context.Context) *Report {
	s.mu.Lock()
	r := s.runner
	s.mu.Unlock()
	rep := r.Run(ctx)
	if ctx.Err() != nil {
		return rep // cancelled mid-run: keep the last complete report
	}
	if s.cfg.Artifacts != "" {
		if err := WriteArtifacts(s.cfg.Artifacts, rep, r.Redactor, s.cfg.ProbeInfo); err != nil {
			s.log.Error("cannot write artifacts", "err", err)
		}
	}
	if s.cfg.Textfile != "" {
		if err := WriteTextfile(s.cfg.Textfile, rep); err != nil {
			s.log.Error("cannot write textfile", "err", err)
		}
	}
	s.met.Observe(rep)
	s.mu.Lock()
	s.last = rep
	s.mu.Unlock()
	s.log.Info("run done", "status", rep.Status.String(), "summary", rep.Summary)
	return rep
}

// Serve serves HTTP on ln and runs the checks every interval until ctx
// ends; then it shuts the listener down and returns nil.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		t := time.NewTicker(s.cfg.Interval)
		defer t.Stop()
		for {
			s.RunOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-s.kick:
			}
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	<-loopDone
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Handler serves the status page, the JSON status and the metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		rep := s.Last()
		w.Header().Set("Content-Type", "application/json")
		if rep == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"schema_version":1,"status":"UNKNOWN","summary":"no run finished yet","checks":[]}` + "\n"))
			return
		}
		if rep.Status != OK && rep.Status != Warning {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = rep.WriteJSON(w)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var data any
		if rep := s.Last(); rep != nil {
			j := rep.JSON()
			data = &j
		}
		if err := statusPage.Execute(w, data); err != nil {
			s.log.Debug("status page", "err", err)
		}
	})
	return mux
}

var statusPage = template.Must(template.New("status").Funcs(template.FuncMap{
	"ms": func(s float64) string {
		return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
	},
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="15"><title>warren probe</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left}
.OK{color:#1a7f37}.WARNING{color:#9a6700}.CRITICAL{color:#cf222e}.UNKNOWN{color:#6e7781}</style></head><body>
<h1>warren probe</h1>
{{if .}}<p class="{{.Status}}"><b>{{.Summary}}</b></p>
<p>Last run {{.StartedAt.Format "2006-01-02 15:04:05 MST"}}, took {{ms .DurationSeconds}}. <a href="status.json">JSON</a> · <a href="metrics">metrics</a></p>
<table><tr><th>status</th><th>check</th><th>kind</th><th>duration</th><th>message</th></tr>
{{range .Checks}}<tr><td class="{{.Status}}">{{.Status}}</td><td>{{.Name}}</td><td>{{.Kind}}</td><td>{{ms .DurationSeconds}}</td><td>{{.Message}}</td></tr>
{{end}}</table>{{else}}<p>No run has finished yet.</p>{{end}}
</body></html>
`))
