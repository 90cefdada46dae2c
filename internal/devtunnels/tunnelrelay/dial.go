package tunnelrelay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// Errors of DialPort, for callers that map them to HTTP statuses.
var (
	// ErrNoHost: no host is connected for the tunnel on this relay.
	ErrNoHost = errors.New("tunnelrelay: no host connected")
	// ErrPortNotForwarded: the host has not forwarded that port.
	ErrPortNotForwarded = errors.New("tunnelrelay: port not forwarded by the host")
	// ErrV1Host: the host speaks V1, where ports are only known inside the
	// end-to-end SSH session a client runs with the host, so the relay
	// cannot open one itself.
	ErrV1Host = errors.New("tunnelrelay: host uses relay protocol V1; relay-side connections need a V2 host")
)

// DialPort opens a connection to port on the host of tunnelID, as a V2
// client's forwarded-tcpip would, for relay-side consumers: web forwarding
// and raw TCP exposure. from, if valid, is passed to the host as the
// originator address. The connection counts in the relay's metrics like a
// client's.
func (r *Relay) DialPort(ctx context.Context, tunnelID string, port uint16, from netip.AddrPort) (net.Conn, error) {
	h := r.host(tunnelID)
	if h == nil {
		return nil, ErrNoHost
	}
	if !h.v2 {
		return nil, ErrV1Host
	}
	if !h.hasPort(uint32(port)) {
		return nil, ErrPortNotForwarded
	}
	req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port)}
	if from.IsValid() {
		req.OriginatorIP, req.OriginatorPort = from.Addr().String(), uint32(from.Port())
	}
	type opened struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	done := make(chan opened, 1)
	go func() {
		ch, reqs, err := h.sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, req.Marshal())
		done <- opened{ch, reqs, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return nil, fmt.Errorf("tunnelrelay: host refused port %d: %w", port, o.err)
		}
		go ssh.DiscardRequests(o.reqs)
		r.m.forwarded.WithLabelValues(tunnelproto.ChannelForwardedTCPIP).Inc()
		return newChannelConn(o.ch, r.m, h.conn.RemoteAddr(), port), nil
	case <-ctx.Done():
		// The open may still succeed: close what it yields.
		go func() {
			if o := <-done; o.err == nil {
				_ = o.ch.Close()
				go ssh.DiscardRequests(o.reqs)
			}
		}()
		return nil, ctx.Err()
	}
}

// channelConn is an SSH channel as a net.Conn. Deadlines are not
// supported: SSH channels have none, and the relay's consumers (an HTTP
// transport, a byte splice) do not set them.
type channelConn struct {
	ssh.Channel
	m      *metrics
	remote net.Addr
	local  net.Addr
}

// ErrNoDeadlines is returned by a relay connection's Set*Deadline methods.
var ErrNoDeadlines = errors.New("tunnelrelay: deadlines are not supported on relay connections")

func newChannelConn(ch ssh.Channel, m *metrics, hostAddr net.Addr, port uint16) *channelConn {
	return &channelConn{Channel: ch, m: m, remote: portAddr{hostAddr, port}, local: hostAddr}
}

func (c *channelConn) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.m.bytesFromHost.Add(float64(n))
	return n, err
}

func (c *channelConn) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	c.m.bytesToHost.Add(float64(n))
	return n, err
}

func (c *channelConn) LocalAddr() net.Addr              { return c.local }
func (c *channelConn) RemoteAddr() net.Addr             { return c.remote }
func (c *channelConn) SetDeadline(time.Time) error      { return ErrNoDeadlines }
func (c *channelConn) SetReadDeadline(time.Time) error  { return ErrNoDeadlines }
func (c *channelConn) SetWriteDeadline(time.Time) error { return ErrNoDeadlines }

// portAddr names a host's port as seen through the relay.
type portAddr struct {
	host net.Addr
	port uint16
}

func (a portAddr) Network() string { return "tunnel" }
func (a portAddr) String() string  { return fmt.Sprintf("%s/port/%d", a.host, a.port) }
