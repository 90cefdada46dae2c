package winghub

import (
	"context"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// fromBrowser routes one frame from a user socket to a wing, with the
// user's identity injected.
func (h *Hub) fromBrowser(ctx context.Context, b *browserConn, data []byte) {
	env, typ, err := wp.DecodeEnvelope(data)
	if err != nil {
		h.log.Debug("bad frame from user dropped", "err", err)
		return
	}
	switch typ {
	case wp.TypePTYStart:
		h.ptyStart(ctx, b, env)
	case wp.TypePTYAttach:
		h.ptyAttach(ctx, b, env)
	case wp.TypePTYDetach:
		h.ptyDetach(b, env.String("session_id"))
	case wp.TypePTYInput, wp.TypePTYResize, wp.TypePTYKill, wp.TypePTYAttentionAk,
		wp.TypePasskeyResp, wp.TypePTYMigrate, wp.TypePTYFallback, wp.TypePTYAck:
		h.sessionFrame(ctx, b, env, typ)
	case wp.TypeTunnelReq:
		h.tunnelReq(ctx, b, env)
	default:
		h.log.Debug("unknown frame from user dropped", "type", typ)
	}
}

// ptyStart gives pty.start a new session id, makes b its controller, and
// sends it to the wing it addresses.
func (h *Hub) ptyStart(ctx context.Context, b *browserConn, env wp.Envelope) {
	h.mu.Lock()
	wc := h.pickWing(b, env.String("wing_id"))
	if wc == nil {
		h.mu.Unlock()
		h.reply(ctx, b, "no wing connected")
		return
	}
	sid := newShortID()
	for h.routes[sid] != nil {
		sid = newShortID()
	}
	h.routes[sid] = &route{sessionID: sid, wingID: wc.machineID, owner: wc.owner, user: b.user.UserID, controller: b, viewers: map[string]*browserConn{},
		acks: env.Bool("acks")}
	h.m.sessions.Set(float64(len(h.routes)))
	h.m.started.Inc()
	h.mu.Unlock()
	env.Set("session_id", sid)
	h.injectIdentity(env, b.user, wc)
	confirmAcks(env)
	h.toWing(ctx, wc, env.Encode())
}

// ptyAttach routes pty.attach: a reattach makes b the session's
// controller (a route the relay does not know, e.g. after a restart, is
// created); spectate adds b as a viewer of a known session.
func (h *Hub) ptyAttach(ctx context.Context, b *browserConn, env wp.Envelope) {
	sid := env.String("session_id")
	spectate := env.Bool("spectate")
	h.mu.Lock()
	wc, rt, refusal := h.attachTarget(b, env.String("wing_id"), sid, spectate)
	if refusal != "" {
		h.mu.Unlock()
		h.reply(ctx, b, refusal)
		return
	}
	if spectate {
		vid := newShortID()
		rt.viewers[vid] = b
		h.mu.Unlock()
		env.Set("viewer_id", vid)
		setAttachIdentity(env, b.user, wc, "display_name", "passkeys", "relay_acks")
		h.toWing(ctx, wc, env.Encode())
		return
	}
	if rt == nil {
		rt = &route{sessionID: sid, wingID: wc.machineID, owner: wc.owner, user: b.user.UserID, viewers: map[string]*browserConn{}}
		h.routes[sid] = rt
		h.m.sessions.Set(float64(len(h.routes)))
	}
	rt.controller = b
	rt.acks = env.Bool("acks") // the new controller acks, or not, for itself
	// The wing closes the old controller's direct channel on a reattach.
	rt.direct = false
	h.countDirect()
	h.mu.Unlock()
	// Identity fields the relay does not inject must not come from the user.
	setAttachIdentity(env, b.user, wc, "viewer_id", "display_name", "passkeys")
	confirmAcks(env)
	h.toWing(ctx, wc, env.Encode())
}

// attachTarget finds the wing and route (nil if the relay does not know
// the session) of a pty.attach, or the error to answer it with; called
// with h.mu held.
func (h *Hub) attachTarget(b *browserConn, msgWing, sid string, spectate bool) (*wingConn, *route, string) {
	wc := h.pickWing(b, msgWing)
	rt := h.routes[sid]
	if rt != nil && !spectate && rt.owner != b.user.UserID && rt.user != b.user.UserID {
		return nil, nil, "session not found"
	}
	if wc == nil && rt != nil {
		if w := h.wings[rt.wingID]; w != nil && canReach(w, b.user) {
			wc = w
		}
	}
	if wc != nil && rt != nil && rt.wingID != wc.machineID {
		wc = nil
	}
	if wc == nil || sid == "" {
		return nil, nil, "no wing connected"
	}
	if spectate && rt == nil {
		return nil, nil, "session not found"
	}
	return wc, rt, ""
}

// setAttachIdentity injects who attaches and deletes the drop fields.
func setAttachIdentity(env wp.Envelope, u UserIdentity, wc *wingConn, drop ...string) {
	env.Set("user_id", u.UserID)
	env.Set("email", u.Email)
	env.Set("org_role", role(wc, u))
	for _, k := range drop {
		delete(env, k)
	}
}

// ptyDetach takes b off the session, as controller or viewer.
func (h *Hub) ptyDetach(b *browserConn, sid string) {
	var n *wingNotice
	h.mu.Lock()
	if rt := h.routes[sid]; rt != nil {
		if rt.controller == b {
			n = h.controllerLeft(rt, b)
		}
		for id, v := range rt.viewers {
			if v == b {
				delete(rt.viewers, id)
			}
		}
	}
	h.mu.Unlock()
	h.sendNotices(n)
}

// sessionFrame routes a frame of a running session (input, resize, kill,
// attention ack, passkey response, migrate, output ack) from its
// controller.
func (h *Hub) sessionFrame(ctx context.Context, b *browserConn, env wp.Envelope, typ string) {
	sid := env.String("session_id")
	h.mu.Lock()
	var wc *wingConn
	if rt := h.routes[sid]; rt != nil {
		if rt.controller == b { // viewers and strangers are dropped
			wc = h.wings[rt.wingID]
			if typ == wp.TypePTYAck {
				rt.acks = true
			}
		} else {
			h.m.droppedFrames.Inc()
		}
	} else if b.queryWing != "" {
		wc = h.pickWing(b, b.queryWing)
	}
	h.mu.Unlock()
	if wc == nil {
		return
	}
	if typ == wp.TypePTYKill {
		env = wp.Envelope{}
		env.Set("type", wp.TypePTYKill)
		env.Set("session_id", sid)
	}
	// Every frame carries who sends it, so the wing can check it
	// against the session (the relay may no longer know the session,
	// e.g. after a restart, and then routes by ?wing_id=).
	h.injectIdentity(env, b.user, wc)
	// Re-encoded, not the raw bytes: duplicate keys collapse to what
	// the relay routed on.
	h.toWing(ctx, wc, env.Encode())
}

// tunnelReq maps request_id to b for the replies, and sends tunnel.req to
// the wing with the sender's identity.
func (h *Hub) tunnelReq(ctx context.Context, b *browserConn, env wp.Envelope) {
	rid := env.String("request_id")
	h.mu.Lock()
	wc := h.pickWing(b, env.String("wing_id"))
	if wc == nil || rid == "" {
		h.mu.Unlock()
		h.reply(ctx, b, "wing not found")
		return
	}
	if old := h.tunnels[rid]; old != nil {
		old.timer.Stop()
	}
	tm := &tunnelMap{browser: b, wingID: wc.machineID}
	tm.timer = time.AfterFunc(h.cfg.TunnelTimeout, func() { h.expireTunnel(rid, tm) })
	h.tunnels[rid] = tm
	h.m.tunnels.Set(float64(len(h.tunnels)))
	h.mu.Unlock()
	env.Set("sender_user_id", b.user.UserID)
	env.Set("sender_email", b.user.Email)
	env.Set("sender_org_role", role(wc, b.user))
	env.Set("sender_passkeys", []string{})
	h.toWing(ctx, wc, env.Encode())
}
