package winghub

import (
	"context"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// route is one PTY session: the wing it runs on and the user sockets on
// it (one controller, any viewers).
type route struct {
	sessionID  string
	wingID     string // machine id
	owner      string // the wing's owner
	user       string // who started (or first attached) the session
	controller *browserConn
	viewers    map[string]*browserConn
	// direct: the wing said the session's I/O moved to a DataChannel
	// (pty.migrated) and has not fallen back since.
	direct bool
	// acks: the controller declared or sent acks (pty.ack), so the wing
	// may hold output for it; the wing is told when it leaves (flow.go).
	acks bool
	// windowed: the wing announced an output window in the controller's
	// pty.started (a wing without flow control is never told).
	windowed bool
}

// tunnelMap is one tunnel request waiting for the wing's reply.
type tunnelMap struct {
	browser *browserConn
	wingID  string
	timer   *time.Timer
}

func (rt *route) all() []*browserConn {
	var out []*browserConn
	if rt.controller != nil {
		out = append(out, rt.controller)
	}
	for _, v := range rt.viewers {
		out = append(out, v)
	}
	return out
}

// canReach: the owner reaches their wings. Other users reach only a locked
// wing with a non-empty allow list: the hub knows the list's length, not its
// entries (the wing sends allowed_count only), so the wing checks every
// frame against the list itself (warren has no orgs; docs/protocols/wing.md §4 #10).
func canReach(wc *wingConn, u UserIdentity) bool {
	return wc.owner == u.UserID || (wc.locked && wc.allowedCount > 0)
}

func role(wc *wingConn, u UserIdentity) string {
	if wc.owner == u.UserID {
		return "owner"
	}
	return "member"
}

// pickWing returns the wing a user frame addresses and whether the user may
// reach it; called with h.mu held. A frame that names no wing gets the
// user's own wing with the lowest machine id (byte order): the same one
// every time, whatever the order of registration (map order is random).
func (h *Hub) pickWing(b *browserConn, msgWing string) *wingConn {
	id := msgWing
	if id == "" {
		id = b.queryWing
	}
	if id != "" {
		wc := h.wings[id]
		if wc == nil || !canReach(wc, b.user) {
			return nil
		}
		return wc
	}
	var pick *wingConn
	for _, wc := range h.wings {
		if wc.owner == b.user.UserID && (pick == nil || wc.machineID < pick.machineID) {
			pick = wc
		}
	}
	return pick
}

func (h *Hub) reply(_ context.Context, b *browserConn, msg string) {
	data, _ := wp.Encode(wp.Error{Type: wp.TypeError, Message: msg})
	h.enqueue(b, data, time.Time{})
}

func (h *Hub) injectIdentity(env wp.Envelope, u UserIdentity, wc *wingConn) {
	env.Set("user_id", u.UserID)
	env.Set("email", u.Email)
	env.Set("display_name", u.DisplayName)
	env.Set("org_role", role(wc, u))
	env.Set("passkeys", []string{})
}

func (h *Hub) expireTunnel(rid string, tm *tunnelMap) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tunnels[rid] == tm {
		delete(h.tunnels, rid)
		h.m.tunnels.Set(float64(len(h.tunnels)))
	}
}
