package probe

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

func TestWriteProviderArtifact(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "arts")
	res, err := turnprovider.Resolve(context.Background(), "generic-turn", turnprovider.Request{Link: "generic-turn://someuser:somepass@127.0.0.1:3478"})
	if err != nil {
		t.Fatal(err)
	}
	// An existing dir with another mode is set to 0755.
	os.MkdirAll(filepath.Join(dir, "generic-turn"), 0o700)
	path, err := WriteProviderArtifact(dir, res.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, "generic-turn", ArtifactFile) {
		t.Errorf("path %s", path)
	}
	st, _ := os.Stat(path)
	dst, _ := os.Stat(filepath.Dir(path))
	if st.Mode().Perm() != 0o644 || dst.Mode().Perm() != 0o755 {
		t.Errorf("modes %v %v", st.Mode().Perm(), dst.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	s := string(data)
	if !strings.HasSuffix(s, "}\n") || !strings.HasPrefix(s, "{\n  \"provider\": \"generic-turn\",\n") ||
		strings.Contains(s, "someuser") || strings.Contains(s, "somepass") ||
		!strings.Contains(s, `"username_redacted": "<redacted:turn-username>"`) {
		t.Errorf("artifact:\n%s", s)
	}
	// A failed resolution's artifact is written the same way.
	_, err = turnprovider.Resolve(context.Background(), "vk", turnprovider.Request{Link: "x"})
	var re *turnprovider.ResolveError
	if !asResolveError(err, &re) {
		t.Fatalf("vk: %v", err)
	}
	if p, err := WriteProviderArtifact(dir, re.Artifact); err != nil || !strings.HasSuffix(p, filepath.Join("vk", ArtifactFile)) {
		t.Errorf("vk artifact %s: %v", p, err)
	}
}

func asResolveError(err error, re **turnprovider.ResolveError) bool {
	e, ok := err.(*turnprovider.ResolveError)
	*re = e
	return ok
}
