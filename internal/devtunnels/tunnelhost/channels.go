package tunnelhost

import (
	"context"
	"errors"
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
		wg.Go(func() { h.forward(ctx, nc, true, wg) })
	case tunnelproto.ChannelClientSSHSessionStream:
		wg.Go(func() { h.nested(ctx, nc) })
	default:
		_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
	}
}

// forward serves a forwarded-tcpip (six-field, four-field fallback) or
// direct-tcpip channel: check the port, dial it locally, pipe. relayed
// says the channel came from the relay session (V2) rather than from a
// nested V1 session: only there does the confirmation carry the
// PortRelayConnectResponse, and only there is end-to-end encryption served
// when the client asks for it.
//
// forward returns once the splice runs (pipe.JoinAsync: an idle
// connection holds one goroutine, on the local socket, started with a
// fresh stack rather than this one's, grown by the setup); wg counts the
// splice until it ends.
func (h *Host) forward(ctx context.Context, nc ssh.NewChannel, relayed bool, wg *sync.WaitGroup) {
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
	var (
		ch   ssh.Channel
		reqs <-chan *ssh.Request
	)
	e2e := relayed && req.IsE2EEncryptionRequested
	if relayed {
		resp := tunnelproto.PortRelayConnectResponse{IsE2EEncryptionEnabled: e2e}
		ch, reqs, err = ssh.AcceptWithData(nc, resp.Marshal())
	} else {
		ch, reqs, err = nc.Accept()
	}
	if err != nil {
		_ = local.Close()
		return
	}
	ssh.RefuseRequests(ch, reqs)
	closeE2E := func() {}
	if e2e {
		inner, cipher, end, err := h.serveE2E(ch)
		if err != nil {
			h.log.Info("E2E stream handshake failed", "port", req.Port, "err", err)
			_ = ch.Close()
			_ = local.Close()
			return
		}
		closeE2E = end
		if h.met != nil {
			h.met.e2eStreams.WithLabelValues(cipher).Inc()
		}
		ch = inner
	}
	var opts *pipe.Options
	m := h.met
	if m != nil {
		m.conns.Inc()
		m.active.Inc()
		opts = &pipe.Options{OnCopy: func(d pipe.Direction, n int) {
			if d == pipe.AToB {
				m.bytesIn.Add(float64(n))
			} else {
				m.bytesOut.Add(float64(n))
			}
		}}
	}
	port := req.Port
	wg.Add(1)
	pipe.JoinAsync(ctx, ch, local, opts, func(_ pipe.Stats, err error) {
		defer wg.Done()
		closeE2E()
		if m != nil {
			m.active.Dec()
		}
		if err != nil && ctx.Err() == nil {
			h.log.Debug("forwarded connection ended", "port", port, "err", err)
		}
	})
}

// nested runs the end-to-end SSH server of a V1 client inside a
// client-ssh-session-stream channel (docs/protocols/devtunnels.md §2.5).
func (h *Host) nested(ctx context.Context, nc ssh.NewChannel) {
	ch, chReqs, err := nc.Accept()
	if err != nil {
		return
	}
	ssh.RefuseRequests(ch, chReqs)
	conn := tunnelrelay.ChannelConn(ch, "client-ssh-session-stream")
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
			wg.Go(func() { h.forward(sctx, nc, false, &wg) })
		default:
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
		}
	}
	cancel()
}

// serveE2E runs the end-to-end encrypted SSH session a V2 client asked
// for inside the stream channel ch (dev-tunnels-ssh's SecureStream): this
// host is its SSH server, with the nested server's host keys (the ones
// published in hostPublicKeys, which the client checks) and no client
// authentication (the relay checked the client's connect token). The
// client opens one "session" channel, which carries the port's bytes; it
// is returned with the cipher negotiated for host-to-client packets and a
// func that ends the inner session.
func (h *Host) serveE2E(ch ssh.Channel) (ssh.Channel, string, func(), error) {
	conn := tunnelrelay.ChannelConn(ch, "client-ssh-session-stream")
	hsTimer := time.AfterFunc(tunnelrelay.SSHHandshakeTimeout, func() { _ = ch.Close() })
	defer hsTimer.Stop()
	sc, chans, reqs, err := ssh.NewServerConn(conn, h.nestedCfg)
	if err != nil {
		return nil, "", nil, err
	}
	for chans != nil {
		var nc ssh.NewChannel
		var ok bool
		select {
		case r, ok := <-reqs:
			if !ok {
				reqs = nil
			} else if r.WantReply {
				_ = r.Reply(false, nil)
			}
			continue
		case nc, ok = <-chans:
			if !ok {
				chans = nil
				continue
			}
		}
		if nc.ChannelType() != tunnelproto.ChannelSession {
			_ = nc.Reject(ssh.UnknownChannelType, "unknown channel type")
			continue
		}
		inner, ireqs, err := nc.Accept()
		if err != nil {
			break
		}
		hsTimer.Stop()
		// Any further request or channel is refused while the stream
		// runs, by the inner session's reader as it arrives: an idle
		// stream keeps no goroutine (sshfork parks the session's own).
		ssh.RefuseRequests(inner, ireqs)
		ssh.RefuseIncoming(sc, chans, reqs, "one stream per E2E session")
		return inner, writeCipher(sc.Conn), func() { _ = inner.Close(); _ = sc.Close() }, nil
	}
	_ = sc.Close()
	return nil, "", nil, errors.New("the E2E session ended before its stream channel opened")
}

// writeCipher is the cipher conn negotiated for the packets it sends, or
// "unknown".
func writeCipher(conn ssh.Conn) string {
	if a, ok := conn.(ssh.AlgorithmsConnMetadata); ok {
		return a.Algorithms().Write.Cipher
	}
	return "unknown"
}
