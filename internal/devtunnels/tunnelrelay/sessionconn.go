package tunnelrelay

import (
	"net"
	"time"

	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

// ChannelConn makes ch a net.Conn for an SSH session that runs inside it
// (V1's nested session, a V2 end-to-end encrypted stream); name is the
// String of its addresses. Deadlines are not supported: a timer closing
// ch bounds the handshake instead.
//
// Over one of sshfork's channels the conn also says when it has data
// (SetDataNotify, Readable), which lets sshfork end the inner session's
// goroutines while it is idle and start them again when data arrives:
// an idle forwarded connection then keeps no goroutine for its inner
// session.
func ChannelConn(ch ssh.Channel, name string) net.Conn {
	c := sessionConn{Channel: ch, addr: sessionAddr(name)}
	if _, ok := ch.(readNotifier); ok {
		return &notifySessionConn{c}
	}
	return &c
}

type sessionConn struct {
	ssh.Channel
	addr sessionAddr
}

type sessionAddr string

func (sessionAddr) Network() string  { return "ssh-channel" }
func (a sessionAddr) String() string { return string(a) }

func (c *sessionConn) LocalAddr() net.Addr                { return c.addr }
func (c *sessionConn) RemoteAddr() net.Addr               { return c.addr }
func (c *sessionConn) SetDeadline(t time.Time) error      { return nil }
func (c *sessionConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *sessionConn) SetWriteDeadline(t time.Time) error { return nil }

// readNotifier is what sshfork's channels add for an idle session.
type readNotifier interface {
	SetDataNotify(fn func())
	Readable() bool
}

type notifySessionConn struct{ sessionConn }

func (c *notifySessionConn) SetDataNotify(fn func()) { c.Channel.(readNotifier).SetDataNotify(fn) }
func (c *notifySessionConn) Readable() bool          { return c.Channel.(readNotifier).Readable() }
