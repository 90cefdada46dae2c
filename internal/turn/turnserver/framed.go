package turnserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
)

// MaxPeersPerSession bounds the upstream sockets one framed session may
// open (one per client peer id), so a client cannot exhaust the server's
// file descriptors.
const MaxPeersPerSession = 1024

// serveFramed runs the framed udp overlay (docs/protocols/turn-overlay.md
// §2.4, version 2) on c: each client peer id gets its own connected
// upstream UDP socket, whose replies go back tagged with that id. A peer's
// socket closes when the client sends a close frame for it or after
// IdleTimeout without replies; the session ends when the DTLS side fails
// or is silent for IdleTimeout.
func (s *Server) serveFramed(ctx context.Context, c *dtls.Conn, log *slog.Logger) error {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var (
		mu    sync.Mutex
		peers = map[uint32]net.Conn{}
		wg    sync.WaitGroup
	)
	defer func() {
		mu.Lock()
		for _, up := range peers {
			up.Close()
		}
		mu.Unlock()
		wg.Wait()
	}()
	drop := func(id uint32, up net.Conn) {
		mu.Lock()
		if peers[id] == up {
			delete(peers, id)
		}
		mu.Unlock()
		up.Close()
	}
	// reply pumps one peer's upstream socket back to the client.
	reply := func(id uint32, up net.Conn) {
		defer wg.Done()
		defer drop(id, up)
		buf := make([]byte, overlay.FrameHeaderLen+1600)
		overlay.PutFrameHeader(buf, overlay.FrameData, id)
		for {
			up.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
			n, err := up.Read(buf[overlay.FrameHeaderLen:])
			if err != nil {
				if isRefused(err) {
					continue
				}
				return
			}
			if _, err := c.Write(buf[:overlay.FrameHeaderLen+n]); err != nil {
				c.Close()
				return
			}
			s.m.Forwarded(overlaymetrics.UpstreamToClient, n)
		}
	}
	var d net.Dialer
	upstream := func(id uint32) (net.Conn, error) {
		mu.Lock()
		defer mu.Unlock()
		if up := peers[id]; up != nil {
			return up, nil
		}
		if len(peers) >= MaxPeersPerSession {
			return nil, fmt.Errorf("session has %d peers, the limit", len(peers))
		}
		up, err := d.DialContext(ctx, "udp", s.cfg.Connect)
		if err != nil {
			return nil, overlay.Errorf(overlay.StageUpstreamDial, "dial upstream %s: %w", s.cfg.Connect, err)
		}
		peers[id] = up
		wg.Add(1)
		go reply(id, up)
		return up, nil
	}
	buf := make([]byte, overlay.FrameHeaderLen+1600)
	for {
		c.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		n, err := c.Read(buf)
		if err != nil {
			if isClosed(err) {
				return nil
			}
			return fmt.Errorf("%s: %w", overlaymetrics.ClientToUpstream, err)
		}
		f, err := overlay.ParseFrame(buf[:n])
		if err != nil {
			s.m.Drop(overlaymetrics.ClientToUpstream)
			log.Debug("bad frame dropped", "err", err)
			continue
		}
		if f.Type == overlay.FrameClose {
			mu.Lock()
			up := peers[f.Peer]
			mu.Unlock()
			if up != nil {
				drop(f.Peer, up)
			}
			continue
		}
		up, err := upstream(f.Peer)
		if err != nil {
			s.m.Drop(overlaymetrics.ClientToUpstream)
			if overlay.StageOf(err) == overlay.StageUpstreamDial {
				return err
			}
			log.Debug("peer refused", "peer_id", f.Peer, "err", err)
			continue
		}
		if _, err := up.Write(f.Payload); err != nil {
			s.m.Drop(overlaymetrics.ClientToUpstream)
			continue
		}
		s.m.Forwarded(overlaymetrics.ClientToUpstream, len(f.Payload))
	}
}
