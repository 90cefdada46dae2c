package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDirCreatable(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	for _, c := range []struct {
		path, want string // want "" means ok
	}{
		{dir, ""},
		{filepath.Join(dir, "a", "b", "c"), ""},
		{file, "is not a directory"},
		{filepath.Join(file, "sub", "deeper"), file + " is not a directory"},
		{"", "empty path"},
	} {
		err := CheckDirCreatable(c.path)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.path, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: got %v, want %q", c.path, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !os.IsNotExist(err) {
		t.Errorf("CheckDirCreatable created a directory: %v", err)
	}
}
