package probe

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// WriteProviderArtifact writes a provider resolution's sanitized artifact
// to dir/<provider>/probe-artifact.json (dirs 0755, file 0644, 2-space
// indent, trailing newline; docs/protocols/turn-overlay.md §3.6) and returns its path.
// The artifact holds placeholders only (turnprovider builds it so); it is
// not passed through a Redactor, which would mangle the JSON keys when a
// username is a short common string.
func WriteProviderArtifact(dir string, a *turnprovider.Artifact) (string, error) {
	name := strings.ToLower(a.Provider)
	if !namePattern.MatchString(name) {
		return "", fmt.Errorf("provider name %q cannot name a directory", a.Provider)
	}
	data, err := a.JSON()
	if err != nil {
		return "", err
	}
	sub := filepath.Join(dir, name)
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return "", fmt.Errorf("artifact dir: %w", err)
	}
	// MkdirAll leaves an existing dir's mode and is subject to the umask.
	if err := os.Chmod(sub, 0o755); err != nil {
		return "", fmt.Errorf("artifact dir: %w", err)
	}
	path := filepath.Join(sub, ArtifactFile)
	if err := writeAtomic(path, data, 0o644); err != nil {
		return "", fmt.Errorf("artifact: %w", err)
	}
	return path, nil
}
