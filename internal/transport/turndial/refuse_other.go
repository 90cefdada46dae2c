//go:build !unix

package turndial

import (
	"errors"
	"net"
	"syscall"
)

// sendTo is unix-only; elsewhere the server still ends the handshake at
// once, and the client finds out at its handshake timeout.
func sendTo(syscall.RawConn, []byte, *net.UDPAddr) error {
	return errors.New("refusal alert not supported on this platform")
}
