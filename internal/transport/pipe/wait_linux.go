package pipe

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// rawConn returns the raw socket of a source that buffers nothing in user
// space, so that waiting for the kernel's receive queue is the same as
// waiting for Read; nil for any other source.
func rawConn(r io.Reader) syscall.RawConn {
	var sc syscall.Conn
	switch c := r.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// waitReadable blocks until a Read on the socket would not block (data,
// EOF or an error is pending), without a buffer: it peeks at one byte with
// MSG_PEEK, so no data is consumed. It uses the runtime's poller, so a
// Close or a read deadline on the connection ends the wait with the same
// error a Read would return.
func waitReadable(rc syscall.RawConn) error {
	var b [1]byte
	var perr error
	err := rc.Read(func(fd uintptr) bool {
		for {
			_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case e == nil:
				return true // data, or 0 bytes at EOF
			case errors.Is(e, syscall.EINTR):
				continue
			case errors.Is(e, syscall.EAGAIN):
				return false // nothing yet: let the poller wait
			default:
				// The peek consumed a pending socket error (a reset, say),
				// so the Read after it would not see it: report it here.
				perr = os.NewSyscallError("recvfrom", e)
				return true
			}
		}
	})
	if err != nil {
		return err
	}
	return perr
}
