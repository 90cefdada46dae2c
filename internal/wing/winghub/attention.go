package winghub

import (
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// forwardAttention tells a session's users (controller and viewers) that
// it needs attention (warren): {"type":"session.attention","session_id",
// "nonce"}. The wing's agent and cwd stay with the relay. The users ring a
// bell or notify, and acknowledge with pty.attention_ack.
func (h *Hub) forwardAttention(wc *wingConn, env wp.Envelope) {
	sid := env.String("session_id")
	h.mu.Lock()
	rt := h.routes[sid]
	if rt == nil || rt.wingID != wc.machineID {
		h.mu.Unlock()
		return
	}
	to := rt.all()
	h.mu.Unlock()
	b, err := wp.Encode(wp.AttentionNotice{Type: wp.TypeAttention, SessionID: sid, Nonce: env.String("nonce")})
	if err != nil {
		return
	}
	for _, u := range to {
		h.enqueue(u, b, time.Time{})
	}
}
