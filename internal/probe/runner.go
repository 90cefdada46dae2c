package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/redact"
)

// SchemaVersion is the version of the JSON result and artifact schemas.
// It changes only when a field changes meaning or goes away.
const SchemaVersion = 1

// Report is the outcome of one run of every check.
type Report struct {
	Status    Status
	Summary   string // one line, "CRITICAL - 1 of 3 checks CRITICAL: tunnel"
	StartedAt time.Time
	Duration  time.Duration
	Checks    []CheckReport // in configuration order
}

// CheckReport is one check's outcome in a Report.
type CheckReport struct {
	Name      string
	Kind      string
	Status    Status
	Message   string // redacted
	Stage     string // the failing stage, "" when OK
	StartedAt time.Time
	Duration  time.Duration
	Timeout   time.Duration
	Warning   time.Duration
	Critical  time.Duration
	Stages    []Stage
	Details   map[string]string // redacted
	Artifact  string            // path of the artifact written for it, if any
	Params    map[string]any    // sanitized parameters, for artifacts
}

// Runner runs checks concurrently, each under its own timeout.
type Runner struct {
	Checks []*Configured
	Logger *slog.Logger // nil: discard
	// Redactor cleans every message and detail (nil: nothing to clean).
	Redactor *redact.Redactor
	// Concurrency bounds how many checks run at once; 0 runs all at once.
	Concurrency int
	// Grace is how long past its timeout a check may take to return
	// before the runner gives up on it; 0: 2s.
	Grace time.Duration
}

// Run runs every check once and returns the report. It returns when every
// check has returned or been given up on; ctx cancels every check.
func (r *Runner) Run(ctx context.Context) *Report {
	log := r.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{StartedAt: time.Now(), Checks: make([]CheckReport, len(r.Checks))}
	var sem chan struct{}
	if r.Concurrency > 0 {
		sem = make(chan struct{}, r.Concurrency)
	}
	var wg sync.WaitGroup
	for i, c := range r.Checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if sem != nil {
				select {
				case sem <- struct{}{}:
					defer func() { <-sem }()
				case <-ctx.Done():
				}
			}
			rep.Checks[i] = r.runOne(ctx, c, log)
		}()
	}
	wg.Wait()
	rep.Duration = time.Since(rep.StartedAt)
	rep.Status, rep.Summary = summarize(rep.Checks)
	return rep
}

func (r *Runner) runOne(ctx context.Context, c *Configured, log *slog.Logger) CheckReport {
	grace := r.Grace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	cr := CheckReport{Name: c.Name, Kind: c.Kind, Timeout: c.Timeout, Warning: c.Warning, Critical: c.Critical,
		Params: c.Params, StartedAt: time.Now()}
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Result{Status: Unknown, Message: fmt.Sprintf("check panicked: %v", p)}
			}
		}()
		done <- c.Check.Run(cctx)
	}()
	var res Result
	abandoned := false
	select {
	case res = <-done:
	case <-time.After(c.Timeout + grace):
		abandoned = true
		res = Result{Err: context.DeadlineExceeded}
	}
	cr.Duration = time.Since(cr.StartedAt)
	timedOut := abandoned || (res.Err != nil && errors.Is(cctx.Err(), context.DeadlineExceeded))
	cr.Status, cr.Message = judge(c, res, cr.Duration, timedOut, ctx.Err() != nil)
	cr.Stage = res.Stage
	cr.Stages = res.Stages
	cr.Message = r.Redactor.Redact(cr.Message)
	if len(res.Details) > 0 {
		cr.Details = make(map[string]string, len(res.Details))
		for k, v := range res.Details {
			cr.Details[k] = r.Redactor.Redact(v)
		}
	}
	if cr.Status != OK {
		cr.Stage = res.Stage
	}
	log.Debug("check done", "check", c.Name, "kind", c.Kind, "status", cr.Status.String(), "duration", cr.Duration, "message", cr.Message)
	return cr
}

// judge turns a Result into a status and message: errors are CRITICAL
// (with the timeout and DNS cases said plainly), then thresholds apply to
// OK results.
func judge(c *Configured, res Result, d time.Duration, timedOut, cancelled bool) (Status, string) {
	if res.Err != nil {
		st := res.Status
		if st == OK {
			st = Critical
		}
		msg := res.Message
		errText := res.Err.Error()
		if msg == "" {
			msg = errText
		} else if !strings.Contains(msg, errText) {
			msg += ": " + errText
		}
		if res.Stage != "" && !strings.HasPrefix(msg, res.Stage+":") {
			msg = res.Stage + ": " + msg
		}
		var dnsErr *net.DNSError
		switch {
		case cancelled:
			return Unknown, "cancelled before the check finished: " + msg
		case timedOut:
			if errors.Is(res.Err, context.DeadlineExceeded) && res.Stage == "" {
				return Critical, fmt.Sprintf("timed out after %s", c.Timeout)
			}
			return Critical, fmt.Sprintf("timed out after %s (%s)", c.Timeout, msg)
		case errors.As(res.Err, &dnsErr):
			return Critical, "DNS lookup failed: " + msg
		}
		return st, msg
	}
	st, msg := res.Status, res.Message
	if msg == "" {
		msg = st.String()
	}
	if st != OK {
		return st, msg
	}
	switch {
	case c.Critical > 0 && d >= c.Critical:
		return Critical, fmt.Sprintf("%s, but took %s (critical at %s)", msg, round(d), c.Critical)
	case c.Warning > 0 && d >= c.Warning:
		return Warning, fmt.Sprintf("%s, but took %s (warning at %s)", msg, round(d), c.Warning)
	}
	return OK, msg
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d
}

// summarize returns the worst status and the summary line.
func summarize(checks []CheckReport) (Status, string) {
	if len(checks) == 0 {
		return Unknown, "UNKNOWN - no checks configured"
	}
	worst := OK
	counts := map[Status]int{}
	var bad []string
	for _, c := range checks {
		worst = Worst(worst, c.Status)
		counts[c.Status]++
		if c.Status != OK {
			bad = append(bad, c.Name)
		}
	}
	var parts []string
	for _, s := range []Status{OK, Warning, Critical, Unknown} {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	line := fmt.Sprintf("%s - %d checks: %s", worst, len(checks), strings.Join(parts, ", "))
	if len(bad) > 0 {
		line += "; not OK: " + strings.Join(bad, ", ")
	}
	return worst, line
}
