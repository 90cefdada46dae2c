//go:build !linux

package pipe

import (
	"io"
	"syscall"
)

// rawConn is nil off Linux: every source is read into a small buffer first.
func rawConn(io.Reader) syscall.RawConn { return nil }

func waitReadable(syscall.RawConn) (int, error) { return 1, nil }

func isStream(io.Reader) bool { return false }
