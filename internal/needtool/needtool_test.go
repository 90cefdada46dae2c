package needtool

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// recorder is a testing.TB that records Skip and Fatal instead of ending
// the calling test; both stop its goroutine, as the real ones do.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Skip(...any)           { r.skipped = true; runtime.Goexit() }
func (r *recorder) Fatalf(string, ...any) { r.failed = true; runtime.Goexit() }

func call(t *testing.T, names ...string) (*recorder, string) {
	r := &recorder{TB: t}
	var got string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); got = Any(r, names, "install it") }()
	wg.Wait()
	return r, got
}

func TestPath(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "warren-needtool-probe")
	if err := os.WriteFile(tool, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if _, err := exec.LookPath("warren-needtool-probe"); err != nil {
		t.Skip("no executable files here:", err)
	}

	for _, c := range []struct {
		name            string
		require, ci     string
		skipped, failed bool
	}{
		{name: "skip by default", skipped: true},
		{name: "required", require: "1", failed: true},
		{name: "CI=true", ci: "true", failed: true},
		{name: "required off", require: "0", ci: "false", skipped: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(RequireEnv, c.require)
			t.Setenv("CI", c.ci)
			r, got := call(t, "no-such-tool-here", "warren-needtool-probe")
			if r.skipped || r.failed || got != tool {
				t.Fatalf("present tool: skipped %v failed %v path %q", r.skipped, r.failed, got)
			}
			r, _ = call(t, "no-such-tool-here")
			if r.skipped != c.skipped || r.failed != c.failed {
				t.Fatalf("missing tool: skipped %v failed %v, want %v %v", r.skipped, r.failed, c.skipped, c.failed)
			}
		})
	}
}
