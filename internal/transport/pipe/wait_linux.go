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
// MSG_PEEK, so no data is consumed. It returns the bytes peeked: 0 is the
// end of the stream on a stream socket, so that the copy ends without
// taking a pooled buffer for a Read that would only return EOF (when
// thousands of connections close at once, that was a 32 KiB buffer each,
// all at the same moment). It uses the runtime's poller, so a
// Close or a read deadline on the connection ends the wait with the same
// error a Read would return.
func waitReadable(rc syscall.RawConn) (int, error) {
	var b [1]byte
	var perr error
	var n int
	err := rc.Read(func(fd uintptr) bool {
		for {
			k, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case e == nil:
				n = k
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
		return 0, err
	}
	return n, perr
}

// isStream says whether a 0-byte peek on r's socket is the end of the
// stream: TCP and unix stream sockets (not unixpacket, where an empty
// message is data).
func isStream(r io.Reader) bool {
	switch c := r.(type) {
	case *net.TCPConn:
		return true
	case *net.UnixConn:
		return c.LocalAddr() != nil && c.LocalAddr().Network() == "unix"
	}
	return false
}
