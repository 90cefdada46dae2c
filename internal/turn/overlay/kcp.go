package overlay

import (
	"net"
	"time"

	"github.com/xtaci/kcp-go/v5"
	"github.com/xtaci/smux"
)

// KCP parameters of the tcp overlay (docs/protocols/turn-overlay.md §2.5), identical to the prototype's -vless.
const (
	KCPMtu    = 1200
	KCPWindow = 256
)

// TuneKCP applies the docs/protocols/turn-overlay.md §2.5 settings to a KCP session.
func TuneKCP(s *kcp.UDPSession) {
	s.SetNoDelay(1, 20, 2, 1)
	s.SetWindowSize(KCPWindow, KCPWindow)
	s.SetMtu(KCPMtu)
	s.SetACKNoDelay(true)
}

// SmuxConfig is the docs/protocols/turn-overlay.md §2.5 smux configuration.
func SmuxConfig() *smux.Config {
	c := smux.DefaultConfig()
	c.MaxReceiveBuffer = 4 << 20
	c.MaxStreamBuffer = 1 << 20
	c.KeepAliveInterval = 10 * time.Second
	c.KeepAliveTimeout = 30 * time.Second
	return c
}

// NoneBlockCrypt is KCP's no-op block cipher (DTLS already encrypts).
func NoneBlockCrypt() kcp.BlockCrypt {
	b, _ := kcp.NewNoneBlockCrypt(nil)
	return b
}

// PacketConn presents a connected DTLS conn as a net.PacketConn so that KCP
// can run over it: each KCP packet is one DTLS record.
type PacketConn struct{ net.Conn }

// NewPacketConn wraps c.
func NewPacketConn(c net.Conn) *PacketConn { return &PacketConn{c} }

// ReadFrom reads one record; the source is always the peer.
func (p *PacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := p.Conn.Read(b)
	return n, p.Conn.RemoteAddr(), err
}

// WriteTo writes one record to the peer, whatever addr says.
func (p *PacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return p.Conn.Write(b) }

// DialKCP starts the client side of KCP over c (conv 0, no FEC).
func DialKCP(c net.Conn) (*kcp.UDPSession, error) {
	s, err := kcp.NewConn4(0, c.RemoteAddr(), NoneBlockCrypt(), 0, 0, false, NewPacketConn(c))
	if err != nil {
		return nil, err
	}
	TuneKCP(s)
	return s, nil
}
