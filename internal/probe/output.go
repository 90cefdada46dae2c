package probe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/redact"
)

// JSONReport is the -o json schema of a run (schema_version 1).
type JSONReport struct {
	SchemaVersion   int         `json:"schema_version"`
	Status          Status      `json:"status"`    // worst status: OK, WARNING, CRITICAL, UNKNOWN
	ExitCode        int         `json:"exit_code"` // the Nagios exit code of status
	Summary         string      `json:"summary"`
	StartedAt       time.Time   `json:"started_at"`
	DurationSeconds float64     `json:"duration_seconds"`
	Checks          []JSONCheck `json:"checks"`
}

// JSONCheck is one check in JSONReport.
type JSONCheck struct {
	Name            string            `json:"name"`
	Kind            string            `json:"kind"`
	Status          Status            `json:"status"`
	Message         string            `json:"message"`
	Stage           string            `json:"stage,omitempty"` // the failing stage
	StartedAt       time.Time         `json:"started_at"`
	DurationSeconds float64           `json:"duration_seconds"`
	TimeoutSeconds  float64           `json:"timeout_seconds"`
	WarningSeconds  float64           `json:"warning_seconds,omitempty"`
	CriticalSeconds float64           `json:"critical_seconds,omitempty"`
	Stages          []JSONStage       `json:"stages"`
	Details         map[string]string `json:"details,omitempty"`
	Artifact        string            `json:"artifact,omitempty"`
}

// JSONStage is one measured step.
type JSONStage struct {
	Name            string  `json:"name"`
	DurationSeconds float64 `json:"duration_seconds"`
}

// JSON returns the report in its JSON schema.
func (r *Report) JSON() JSONReport {
	out := JSONReport{SchemaVersion: SchemaVersion, Status: r.Status, ExitCode: r.Status.ExitCode(),
		Summary: r.Summary, StartedAt: r.StartedAt.UTC(), DurationSeconds: r.Duration.Seconds(), Checks: []JSONCheck{}}
	for _, c := range r.Checks {
		out.Checks = append(out.Checks, c.json())
	}
	return out
}

func (c CheckReport) json() JSONCheck {
	j := JSONCheck{Name: c.Name, Kind: c.Kind, Status: c.Status, Message: c.Message, Stage: c.Stage,
		StartedAt: c.StartedAt.UTC(), DurationSeconds: c.Duration.Seconds(), TimeoutSeconds: c.Timeout.Seconds(),
		WarningSeconds: c.Warning.Seconds(), CriticalSeconds: c.Critical.Seconds(), Stages: []JSONStage{},
		Details: c.Details, Artifact: c.Artifact}
	for _, s := range c.Stages {
		j.Stages = append(j.Stages, JSONStage{Name: s.Name, DurationSeconds: s.Duration.Seconds()})
	}
	return j
}

// WriteText writes the summary line (with Nagios performance data after
// "|") and then one line per check.
func (r *Report) WriteText(w io.Writer) error {
	var perf []string
	for _, c := range r.Checks {
		perf = append(perf, fmt.Sprintf("'%s'=%.6fs;%s;%s;0;%s", c.Name, c.Duration.Seconds(),
			secs(c.Warning), secs(c.Critical), secs(c.Timeout)))
	}
	if _, err := fmt.Fprintf(w, "%s | %s\n", r.Summary, strings.Join(perf, " ")); err != nil {
		return err
	}
	for _, c := range r.Checks {
		line := fmt.Sprintf("%-8s %s (%s) %s: %s", c.Status, c.Name, c.Kind, round(c.Duration), c.Message)
		if c.Artifact != "" {
			line += " [artifact " + c.Artifact + "]"
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
	}
	return nil
}

func secs(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return fmt.Sprintf("%g", d.Seconds())
}

// ArtifactFile is the file name of every artifact, in a directory per
// subject: <dir>/<check>/probe-artifact.json, as `probe resolve` writes
// <dir>/<provider>/probe-artifact.json (docs/protocols/turn-overlay.md §3.6).
const ArtifactFile = "probe-artifact.json"

// Artifact is what is kept of a failed check: enough to see what was
// configured, what happened and when, with every secret redacted.
type Artifact struct {
	SchemaVersion int               `json:"schema_version"`
	Check         string            `json:"check"`
	Kind          string            `json:"kind"`
	Status        Status            `json:"status"`
	Message       string            `json:"message"`
	Stage         string            `json:"stage,omitempty"`
	StartedAt     time.Time         `json:"started_at"`
	Duration      float64           `json:"duration_seconds"`
	Timeout       float64           `json:"timeout_seconds"`
	Warning       float64           `json:"warning_seconds,omitempty"`
	Critical      float64           `json:"critical_seconds,omitempty"`
	Stages        []JSONStage       `json:"stages"`
	Details       map[string]string `json:"details,omitempty"`
	Params        map[string]any    `json:"params"`
	Probe         map[string]string `json:"probe,omitempty"` // version of the probe that wrote it
}

// WriteArtifacts writes an artifact for every check that is not OK into
// dir/<check>/probe-artifact.json (dirs 0755, files 0644, 2-space indent,
// trailing newline), replacing older ones atomically, and records the
// path in the report. The whole file passes through red once more, so a
// secret that slipped into a detail still cannot land on disk.
func WriteArtifacts(dir string, r *Report, red *redact.Redactor, probeInfo map[string]string) error {
	for i := range r.Checks {
		c := &r.Checks[i]
		if c.Status == OK {
			continue
		}
		j := c.json()
		a := Artifact{SchemaVersion: SchemaVersion, Check: c.Name, Kind: c.Kind, Status: c.Status, Message: c.Message,
			Stage: c.Stage, StartedAt: j.StartedAt, Duration: j.DurationSeconds, Timeout: j.TimeoutSeconds,
			Warning: j.WarningSeconds, Critical: j.CriticalSeconds, Stages: j.Stages, Details: c.Details,
			Params: c.Params, Probe: probeInfo}
		if a.Params == nil {
			a.Params = map[string]any{}
		}
		data, err := marshalJSON(a)
		if err != nil {
			return err
		}
		data = red.RedactBytes(data)
		sub := filepath.Join(dir, c.Name)
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("artifact dir: %w", err)
		}
		path := filepath.Join(sub, ArtifactFile)
		if err := writeAtomic(path, data, 0o644); err != nil {
			return fmt.Errorf("artifact of %s: %w", c.Name, err)
		}
		c.Artifact = path
	}
	return nil
}

// writeAtomic writes data to a temporary file next to path and renames it
// over path, so a reader (node_exporter, a CI upload) never sees half a file.
func writeAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// marshalJSON is 2-space indented JSON with a trailing newline and without
// HTML escaping, so <redacted:...> placeholders read as they are.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteJSON writes the report in its JSON schema (JSONReport).
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := marshalJSON(r.JSON())
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
