package secret

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestFromFile(t *testing.T) {
	files := map[string]string{"a": "s3cret\r\n", "b": "two\nlines\n\n", "empty": "\n"}
	read := func(p string) ([]byte, error) {
		s, ok := files[p]
		if !ok {
			return nil, fs.ErrNotExist
		}
		return []byte(s), nil
	}
	for path, want := range map[string]string{"a": "s3cret", "b": "two\nlines"} {
		if got, err := FromFile(read, path); err != nil || got != want {
			t.Errorf("FromFile(%q) = %q, %v; want %q", path, got, err, want)
		}
	}
	if _, err := FromFile(read, "empty"); err == nil || err.Error() != "file empty is empty" {
		t.Errorf("empty file: %v", err)
	}
	if _, err := FromFile(read, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(n string) (string, bool) { v, ok := env[n]; return v, ok }
	if v, err := FromEnv(lookup, "SET"); err != nil || v != "v" {
		t.Errorf("SET: %q, %v", v, err)
	}
	for _, n := range []string{"EMPTY", "UNSET"} {
		if _, err := FromEnv(lookup, n); err == nil || !strings.Contains(err.Error(), n+" is not set or empty") {
			t.Errorf("%s: %v", n, err)
		}
	}
}
