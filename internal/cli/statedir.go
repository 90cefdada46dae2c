package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// StatePath returns elem joined under warren's per-user state directory:
// $XDG_STATE_HOME/warren, else ~/.local/state/warren (the XDG base
// directory default). what names the file in the error when neither is
// known, so the operator knows which setting to give instead.
func StatePath(what string, elem ...string) (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no home directory for %s (set XDG_STATE_HOME): %w", what, err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(append([]string{dir, "warren"}, elem...)...), nil
}
