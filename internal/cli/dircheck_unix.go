//go:build unix

package cli

import "golang.org/x/sys/unix"

// writable: this process may create entries in directory p.
func writable(p string) error { return unix.Access(p, unix.W_OK|unix.X_OK) }
