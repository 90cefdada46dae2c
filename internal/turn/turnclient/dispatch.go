package turnclient

import (
	"context"
	"errors"
	"net"
	"os"
	"time"

	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
)

// readBuf holds one record: a 1600-byte datagram plus the frame header.
const readBuf = 1600 + overlay.FrameHeaderLen

// readLocal dispatches local datagrams to workers (udp ingress).
func (c *Client) readLocal(ctx context.Context) error {
	buf := make([]byte, 65536)
	for {
		n, from, err := c.local.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return overlay.Errorf(overlay.StageForwardingLoop, "read local udp: %w", err)
		}
		w, id := c.router.pick(from)
		if w == nil {
			c.m.Drop(overlaymetrics.LocalToRelay)
			continue
		}
		// The header is filled in now and skipped by sendLoop when the
		// worker's session turns out to be raw.
		pkt := make([]byte, overlay.FrameHeaderLen+n)
		overlay.PutFrameHeader(pkt, overlay.FrameData, id)
		copy(pkt[overlay.FrameHeaderLen:], buf[:n])
		select {
		case w.out <- pkt:
		default:
			c.m.Drop(overlaymetrics.LocalToRelay)
		}
	}
}

// sendLoop writes w's queued frames to its live session: whole on a
// framed session, the payload alone on a raw one.
func (c *Client) sendLoop(ctx context.Context, w *worker) {
	for {
		select {
		case <-ctx.Done():
			return
		case pkt := <-w.out:
			s := w.cur.Load()
			ctl := pkt[0] != overlay.FrameData
			if s == nil {
				if !ctl {
					c.m.Drop(overlaymetrics.LocalToRelay)
				}
				continue
			}
			rec := pkt
			if !s.framed {
				if ctl {
					continue // raw sessions have no control frames
				}
				rec = pkt[overlay.FrameHeaderLen:]
			}
			if _, err := s.dtls.Write(rec); err != nil {
				if !ctl {
					c.m.Drop(overlaymetrics.LocalToRelay)
				}
				s.fail(overlay.Errorf(overlay.StageForwardingLoop, "dtls write: %w", err))
				continue
			}
			if !ctl {
				c.m.Forwarded(overlaymetrics.LocalToRelay, len(pkt)-overlay.FrameHeaderLen)
			}
		}
	}
}

// receiveLoop hands datagrams from s to the local peer that owns w.
func (c *Client) receiveLoop(w *worker, s *session) {
	buf := make([]byte, readBuf)
	for {
		n, err := s.dtls.Read(buf)
		if err != nil {
			s.fail(overlay.Errorf(overlay.StageForwardingLoop, "dtls read: %w", err))
			return
		}
		payload := buf[:n]
		var to net.Addr
		if s.framed {
			f, err := overlay.ParseFrame(payload)
			if err != nil || f.Type != overlay.FrameData {
				c.m.Drop(overlaymetrics.RelayToLocal)
				continue
			}
			payload, to = f.Payload, c.router.peerAddr(f.Peer)
		} else {
			to = c.router.ownerOf(w)
		}
		if to == nil {
			c.m.Drop(overlaymetrics.RelayToLocal)
			continue
		}
		if _, err := c.local.WriteTo(payload, to); err != nil {
			c.m.Drop(overlaymetrics.RelayToLocal)
			continue
		}
		c.m.Forwarded(overlaymetrics.RelayToLocal, len(payload))
	}
}

func (c *Client) expireLoop(ctx context.Context) {
	every := min(max(c.cfg.PeerIdle/4, 10*time.Millisecond), 10*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if ids := c.router.expire(); len(ids) > 0 {
				c.log.Debug("idle local peers expired", "peers", len(ids))
				// Let tunnel-server close their upstream sockets now rather
				// than at its idle timeout.
				for _, w := range c.router.framedWorkers() {
					for _, id := range ids {
						pkt := make([]byte, overlay.FrameHeaderLen)
						overlay.PutFrameHeader(pkt, overlay.FrameClose, id)
						select {
						case w.out <- pkt:
						default:
						}
					}
				}
			}
		}
	}
}

// acceptLocal spreads local TCP connections over live smux sessions.
func (c *Client) acceptLocal(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	defer ln.Close()
	c.log.Info("local listener open", "event", "runtime_startup", "stage", overlay.StageLocalBind, "result", "ready", "addr", ln.Addr().String())
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return overlay.Errorf(overlay.StageForwardingLoop, "accept local tcp: %w", err)
		}
		go c.serveLocal(ctx, conn)
	}
}

func (c *Client) serveLocal(ctx context.Context, conn net.Conn) {
	c.poolMu.Lock()
	var live []*session
	for _, s := range c.pool {
		if !s.mux.IsClosed() {
			live = append(live, s)
		}
	}
	c.poolMu.Unlock()
	if len(live) == 0 {
		c.m.Drop(overlaymetrics.LocalToRelay)
		conn.Close()
		return
	}
	s := live[c.poolRR.Add(1)%uint64(len(live))]
	st, err := s.mux.OpenStream()
	if err != nil {
		c.m.Drop(overlaymetrics.LocalToRelay)
		conn.Close()
		return
	}
	pipe.Join(ctx, conn, st, &pipe.Options{OnCopy: func(d pipe.Direction, n int) {
		if d == pipe.AToB {
			c.m.Forwarded(overlaymetrics.LocalToRelay, n)
		} else {
			c.m.Forwarded(overlaymetrics.RelayToLocal, n)
		}
	}})
}
