package tunnelhost

import (
	"context"
	"net"
	"sync"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/pipe"
)

// handleChannel dispatches a channel the relay opened (docs/protocols/devtunnels.md §2.6 table).
func (h *Host) handleChannel(ctx context.Context, nc ssh.NewChannel, wg *sync.WaitGroup) {
	switch nc.ChannelType() {
	case tunnelproto.ChannelForwardedTCPIP:
		wg.Go(func() { h.forward(ctx, nc) })
	case tunnelproto.ChannelClientSSHSessionStream:
		wg.Go(func() { h.nested(ctx, nc) })
	default:
		_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
	}
}

// forward serves a forwarded-tcpip (six-field, four-field fallback) or
// direct-tcpip channel: check the port, dial it locally, pipe.
func (h *Host) forward(ctx context.Context, nc ssh.NewChannel) {
	req, _, err := tunnelproto.ParsePortRelayConnectRequest(nc.ExtraData())
	if err != nil {
		_ = nc.Reject(ssh.ConnectionFailed, "bad channel open payload")
		return
	}
	if !h.hasPort(req.Port) {
		_ = nc.Reject(ssh.Prohibited, "administratively prohibited")
		return
	}
	local, err := h.dialLocal(ctx, req.Port)
	if err != nil {
		h.log.Info("dialing forwarded port failed", "port", req.Port, "err", err)
		_ = nc.Reject(ssh.ConnectionFailed, "connection refused")
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		_ = local.Close()
		return
	}
	go ssh.DiscardRequests(reqs)
	var opts *pipe.Options
	if m := h.met; m != nil {
		m.conns.Inc()
		m.active.Inc()
		defer m.active.Dec()
		opts = &pipe.Options{OnCopy: func(d pipe.Direction, n int) {
			if d == pipe.AToB {
				m.bytesIn.Add(float64(n))
			} else {
				m.bytesOut.Add(float64(n))
			}
		}}
	}
	if _, err := pipe.Join(ctx, ch, local, opts); err != nil && ctx.Err() == nil {
		h.log.Debug("forwarded connection ended", "port", req.Port, "err", err)
	}
}

// nested runs the end-to-end SSH server of a V1 client inside a
// client-ssh-session-stream channel (docs/protocols/devtunnels.md §2.5).
func (h *Host) nested(ctx context.Context, nc ssh.NewChannel) {
	ch, chReqs, err := nc.Accept()
	if err != nil {
		return
	}
	go ssh.DiscardRequests(chReqs)
	conn := &chanConn{Channel: ch}
	hsTimer := time.AfterFunc(tunnelrelay.SSHHandshakeTimeout, func() { _ = ch.Close() })
	sc, chans, reqs, err := ssh.NewServerConn(conn, h.nestedCfg)
	hsTimer.Stop()
	if err != nil {
		_ = ch.Close()
		h.log.Debug("nested SSH handshake failed", "err", err)
		return
	}
	defer sc.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		<-sctx.Done()
		_ = sc.Close()
	}()
	f := &forwarder{h: h, conn: sc, announced: map[uint16]bool{}}
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for req := range reqs {
			switch req.Type {
			case tunnelproto.RequestRefreshPorts:
				// Reply after the refresh (and its forwards) so that the
				// client sees the new ports when RefreshPorts returns.
				wg.Go(func() {
					err := h.refreshPorts(sctx)
					if err != nil {
						h.log.Warn("RefreshPorts: re-reading ports failed", "err", err)
					}
					_ = req.Reply(err == nil, nil)
				})
			default:
				if req.WantReply {
					_ = req.Reply(false, nil)
				}
			}
		}
	})
	wg.Go(func() { h.addSession(f) })
	defer h.removeSession(f)
	for nc := range chans {
		switch nc.ChannelType() {
		case tunnelproto.ChannelSession:
			ch, reqs, err := nc.Accept()
			if err != nil {
				continue
			}
			wg.Go(func() {
				for r := range reqs {
					if r.WantReply {
						_ = r.Reply(false, nil)
					}
				}
				_ = ch.Close()
			})
		case tunnelproto.ChannelForwardedTCPIP, tunnelproto.ChannelDirectTCPIP:
			wg.Go(func() { h.forward(sctx, nc) })
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
	cancel()
}

// chanConn makes an ssh.Channel a net.Conn for the nested SSH server.
// Deadlines are not supported (the handshake timeout closes the channel).
type chanConn struct{ ssh.Channel }

type chanAddr struct{}

func (chanAddr) Network() string { return "ssh-channel" }
func (chanAddr) String() string  { return "client-ssh-session-stream" }

func (c *chanConn) LocalAddr() net.Addr                { return chanAddr{} }
func (c *chanConn) RemoteAddr() net.Addr               { return chanAddr{} }
func (c *chanConn) SetDeadline(t time.Time) error      { return nil }
func (c *chanConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *chanConn) SetWriteDeadline(t time.Time) error { return nil }
