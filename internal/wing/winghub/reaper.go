package winghub

import (
	"time"

	"github.com/coder/websocket"
)

func (h *Hub) reaper() {
	tick := time.NewTicker(max(h.cfg.HeartbeatTimeout/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			return
		case now := <-tick.C:
			h.mu.Lock()
			var dead []*wingConn
			for _, wc := range h.wings {
				if now.Sub(wc.lastSeen) > h.cfg.HeartbeatTimeout {
					dead = append(dead, wc)
				}
			}
			for n, at := range h.nonces {
				if now.Sub(at) > 10*time.Minute {
					delete(h.nonces, n)
				}
			}
			h.mu.Unlock()
			for _, wc := range dead {
				h.log.Warn("wing missed 3 heartbeats; closing it", "wing", wc.machineID)
				h.m.reaped.Inc()
				// Close waits for the peer's close frame; a silent wing
				// will not send one, so do not hold the reaper for it.
				go wc.ws.Close(websocket.StatusPolicyViolation, "heartbeat timeout")
				h.wingGone(wc)
			}
		}
	}
}
