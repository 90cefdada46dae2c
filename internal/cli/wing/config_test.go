package wing

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenhq/warren/internal/cli"
)

// runWing runs the wing command line with the developer's config files
// and WARREN_WING_* env kept out, and returns its exit code, stdout and
// stderr.
func runWing(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("HOME", dir)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "WARREN_WING_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := cli.Run(context.Background(), spec, build, args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// TestOutputWindowKey: serve.output_window is a size (flag, env, YAML),
// 2MiB by default, 0 turns the window off; a bad value is a usage error
// (exit 2) naming the key.
func TestOutputWindowKey(t *testing.T) {
	if code, out, errs := runWing(t, nil, "config", "show"); code != 0 || !strings.Contains(out, "output_window: 2MiB") {
		t.Fatalf("default: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := runWing(t, map[string]string{"WARREN_WING_SERVE_OUTPUT_WINDOW": "0"}, "config", "show"); code != 0 || !strings.Contains(out, `output_window: "0"`) {
		t.Fatalf("env 0: exit %d\n%s%s", code, out, errs)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "wing.yaml")
	if err := os.WriteFile(file, []byte("serve:\n  output_window: 512KiB\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runWing(t, nil, "--config", file, "config", "show"); code != 0 || !strings.Contains(out, "output_window: 512KiB") {
		t.Fatalf("YAML 512KiB: exit %d\n%s%s", code, out, errs)
	}
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"flag not a size", nil, []string{"serve", "--output-window", "lots"}},
		{"flag too small", nil, []string{"serve", "--output-window", "1KiB"}},
		{"flag negative", nil, []string{"serve", "--output-window=-1"}},
		{"env not a size", map[string]string{"WARREN_WING_SERVE_OUTPUT_WINDOW": "off"}, []string{"config", "validate", "serve"}},
		{"env too big", map[string]string{"WARREN_WING_SERVE_OUTPUT_WINDOW": "2GiB"}, []string{"config", "validate", "serve"}},
	} {
		code, _, errs := runWing(t, c.env, c.args...)
		if code != 2 || !strings.Contains(errs, "serve.output_window") {
			t.Errorf("%s: exit %d, want 2 naming serve.output_window:\n%s", c.name, code, errs)
		}
	}
}
