package winghub

import (
	"context"
	"encoding/json"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// fromWing handles one frame from a wing: its own state (config,
// attention) is kept here, replies are routed to the users waiting for
// them.
func (h *Hub) fromWing(ctx context.Context, wc *wingConn, data []byte) {
	env, typ, err := wp.DecodeEnvelope(data)
	if err != nil {
		h.log.Debug("bad frame from wing", "wing", wc.machineID, "err", err)
		return
	}
	switch typ {
	case wp.TypeWingHeartbeat, wp.TypeWingRegister:
	case wp.TypeWingConfig:
		h.wingConfig(wc, env)
	case wp.TypeAttention:
		if h.attention(wc, env) {
			h.forwardAttention(wc, env)
		}
	case wp.TypeTunnelRes, wp.TypeTunnelStream:
		h.tunnelReply(wc, env, typ, data)
	case wp.TypePTYStarted, wp.TypePTYOutput, wp.TypePTYPreview, wp.TypePTYBrowserOpen,
		wp.TypePasskeyChal, wp.TypePTYMigrate, wp.TypePTYMigrated, wp.TypePTYFallback, wp.TypePTYExited:
		h.sessionReply(wc, env, typ, data)
	default:
		h.log.Debug("unknown frame from wing dropped", "wing", wc.machineID, "type", typ)
	}
}

// wingConfig records wing.config: whether the wing is locked and how long
// its allow list is.
func (h *Hub) wingConfig(wc *wingConn, env wp.Envelope) {
	h.mu.Lock()
	wc.locked = env.Bool("locked")
	var n int
	json.Unmarshal(env["allowed_count"], &n)
	wc.allowedCount = n
	h.mu.Unlock()
}

// attention counts and logs session.attention, once per nonce; it
// reports whether the nonce was new.
func (h *Hub) attention(wc *wingConn, env wp.Envelope) bool {
	nonce := env.String("nonce")
	h.mu.Lock()
	_, dup := h.nonces[nonce]
	if !dup {
		h.nonces[nonce] = time.Now()
	}
	h.mu.Unlock()
	if !dup {
		h.m.attention.Inc()
		h.log.Info("session needs attention", "wing", wc.machineID, "session", env.String("session_id"))
	}
	return !dup
}

// tunnelReply routes tunnel.res and tunnel.stream to the user who sent the
// request, by request_id; the mapping ends with the last frame.
func (h *Hub) tunnelReply(wc *wingConn, env wp.Envelope, typ string, data []byte) {
	id := env.String("request_id")
	h.mu.Lock()
	tm := h.tunnels[id]
	if tm == nil || tm.wingID != wc.machineID {
		h.mu.Unlock()
		return
	}
	if typ == wp.TypeTunnelRes || env.Bool("done") {
		tm.timer.Stop()
		delete(h.tunnels, id)
	} else {
		tm.timer.Reset(h.cfg.TunnelTimeout)
	}
	h.m.tunnels.Set(float64(len(h.tunnels)))
	h.mu.Unlock()
	h.enqueue(tm.browser, data, time.Time{})
}

// sessionReply routes a PTY session frame by session_id: to the viewer it
// names, to everyone on the session when it exited, else to the
// controller.
func (h *Hub) sessionReply(wc *wingConn, env wp.Envelope, typ string, data []byte) {
	sid, vid := env.String("session_id"), env.String("viewer_id")
	h.mu.Lock()
	rt := h.routes[sid]
	if rt == nil || rt.wingID != wc.machineID {
		h.mu.Unlock()
		return
	}
	var to []*browserConn
	metered := false // only controller PTY output counts (docs/protocols/wing.md §3.2)
	switch {
	case vid != "":
		if v := rt.viewers[vid]; v != nil {
			to = append(to, v)
			if typ == wp.TypePTYExited {
				delete(rt.viewers, vid)
			}
		}
	case typ == wp.TypePTYExited:
		to = rt.all()
		delete(h.routes, sid)
		h.m.sessions.Set(float64(len(h.routes)))
		h.countDirect()
	case rt.controller != nil:
		h.noteDirect(rt, typ)
		if typ == wp.TypePTYStarted {
			rt.windowed = startedWindow(env) // flow.go
		}
		to = append(to, rt.controller)
		metered = typ == wp.TypePTYOutput || typ == wp.TypePTYPreview
	}
	h.mu.Unlock()
	var at time.Time // when the rate limit lets the frame go
	if metered {
		var ok bool
		if at, ok = h.charge(to[0], sid, len(data)); !ok {
			return
		}
	}
	for _, b := range to {
		h.enqueue(b, data, at)
	}
}
