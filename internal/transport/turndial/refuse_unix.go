//go:build unix

package turndial

import (
	"errors"
	"net"
	"syscall"
)

func sendTo(rc syscall.RawConn, pkt []byte, to *net.UDPAddr) error {
	s6 := &syscall.SockaddrInet6{Port: to.Port}
	copy(s6.Addr[:], to.IP.To16())
	addrs := []syscall.Sockaddr{s6}
	if ip4 := to.IP.To4(); ip4 != nil {
		s4 := &syscall.SockaddrInet4{Port: to.Port}
		copy(s4.Addr[:], ip4)
		// An IPv4 socket takes the first; a dual-stack IPv6 socket (":"
		// or "0.0.0.0" listened as "udp") the v4-mapped second.
		addrs = []syscall.Sockaddr{s4, s6}
	}
	var serr error
	for _, sa := range addrs {
		err := rc.Write(func(fd uintptr) bool {
			serr = syscall.Sendto(int(fd), pkt, 0, sa)
			return !errors.Is(serr, syscall.EAGAIN)
		})
		if err != nil {
			return err
		}
		if serr == nil {
			return nil
		}
	}
	return serr
}
