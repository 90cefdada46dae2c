package needtool

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// RequireEnv is the environment variable that turns a missing tool from a
// skip into a failure when set to "1" or "true".
const RequireEnv = "WARREN_REQUIRE_TOOLS"

// Required reports whether a missing tool must fail the test rather than
// skip it: WARREN_REQUIRE_TOOLS=1 (set by .ci/run) or CI=true (set by most
// CI services, and already honoured for curl before this package existed).
func Required() bool {
	switch strings.ToLower(os.Getenv(RequireEnv)) {
	case "1", "true", "yes":
		return true
	}
	return os.Getenv("CI") == "true"
}

// Path returns the path of program name on PATH. When it is missing the
// test is skipped, or fails under Required; install says how to get it
// (e.g. "apt-get install curl") and is part of the message.
func Path(t testing.TB, name, install string) string {
	t.Helper()
	return Any(t, []string{name}, install)
}

// Any is Path for a program known under several names (chromium,
// chromium-browser, google-chrome): the first one found wins.
func Any(t testing.TB, names []string, install string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := strings.Join(names, " / ") + " is not on PATH (" + install + ")"
	if Required() {
		t.Fatalf("%s, and %s=1 or CI=true says the tools are installed", msg, RequireEnv)
	}
	t.Skip(msg)
	return ""
}
