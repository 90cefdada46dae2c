package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// CheckDirCreatable reports why dir could not be used as a daemon's data
// directory: it must be a writable directory, or be creatable, that is its
// nearest existing ancestor is a directory this process may write into.
// It creates nothing, so 'config validate' can run it.
func CheckDirCreatable(dir string) error {
	if dir == "" {
		return errors.New("empty path")
	}
	want := filepath.Clean(dir)
	for p := want; ; {
		st, err := os.Stat(p)
		switch {
		case err == nil && !st.IsDir() && p == want:
			return fmt.Errorf("%s is not a directory", p)
		case err == nil && !st.IsDir():
			return fmt.Errorf("cannot create %s: %s is not a directory", want, p)
		case err == nil:
			if werr := writable(p); werr != nil {
				if p == want {
					return fmt.Errorf("directory %s is not writable: %w", p, werr)
				}
				return fmt.Errorf("cannot create %s: %s is not writable: %w", want, p, werr)
			}
			return nil
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			// Walk up; a file in the way shows up as not a directory.
		default:
			return fmt.Errorf("cannot use %s: %w", want, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("cannot create %s: no existing parent directory", want)
		}
		p = parent
	}
}
