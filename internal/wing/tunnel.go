package wing

import (
	"context"
	"encoding/json"
	"os"
	"runtime"

	wp "github.com/warrenhq/warren/internal/protocol/wingproto"
)

// tunnel answers the few encrypted requests this wing supports so far
// (wing.md §2.8): wing.info and sessions.list; anything else gets an
// encrypted "unsupported" error. Payloads that do not decrypt are dropped.
func (a *Agent) tunnel(ctx context.Context, m wp.TunnelReq) {
	c, err := wp.NewCipher(a.cfg.Key, m.SenderPub, wp.InfoTunnel)
	if err != nil {
		return
	}
	plain, err := c.Open(m.Payload)
	if err != nil {
		return
	}
	var req struct {
		Type string `json:"type"`
	}
	json.Unmarshal(plain, &req)
	var res any
	switch req.Type {
	case "wing.info":
		host, _ := os.Hostname()
		agents := []string{}
		for n := range a.cfg.Agents {
			agents = append(agents, n)
		}
		res = map[string]any{"hostname": host, "platform": runtime.GOOS, "version": a.cfg.Version, "agents": agents,
			"projects": []any{}, "locked": false, "spectate": a.cfg.Spectate, "allowed_count": 0}
	case "sessions.list":
		type item struct {
			SessionID      string `json:"session_id"`
			Agent          string `json:"agent"`
			Cwd            string `json:"cwd"`
			NeedsAttention bool   `json:"needs_attention"`
		}
		list := []item{}
		a.mu.Lock()
		for _, s := range a.sessions {
			s.mu.Lock()
			list = append(list, item{s.id, s.agent, s.cwd, s.attention})
			s.mu.Unlock()
		}
		a.mu.Unlock()
		res = map[string]any{"sessions": list}
	default:
		res = map[string]string{"error": "unsupported: " + req.Type}
	}
	b, _ := json.Marshal(res)
	a.send(ctx, wp.TunnelRes{Type: wp.TypeTunnelRes, RequestID: m.RequestID, Payload: c.Seal(b)})
}
