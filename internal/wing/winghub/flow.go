package winghub

import (
	"context"
	"encoding/json"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Output flow control (docs/protocols/wing.md §2.12): the relay confirms
// a controller's declared acks on pty.start and pty.attach (relay_acks),
// passes its pty.ack to the wing like pty.input, and notes that the
// route's controller acknowledges. A wing then holds the session's output
// while the controller has a window of it unacknowledged, so when that
// controller leaves (pty.detach, its socket closing, the bandwidth cap),
// the wing is told with a pty.detach of its own, and stops waiting.

// confirmAcks marks a controller's pty.start or pty.attach that declares
// acks ("acks": true) with "relay_acks": true: this relay passes pty.ack
// on, so the wing may apply the window at once. Only the relay sets it.
func confirmAcks(env wp.Envelope) {
	delete(env, "relay_acks")
	if env.Bool("acks") {
		env.Set("relay_acks", true)
	}
}

// wingNotice is a frame for a wing, sent once h.mu is released.
type wingNotice struct {
	wc   *wingConn
	data []byte
}

// startedWindow: a controller's pty.started announces an output window.
func startedWindow(env wp.Envelope) bool {
	var w int64
	return json.Unmarshal(env["window"], &w) == nil && w > 0
}

// controllerLeft clears b as rt's controller and returns the pty.detach
// to tell the wing when the controller declared or sent acks to a wing
// that announced a window; called with h.mu held, b being rt's
// controller.
func (h *Hub) controllerLeft(rt *route, b *browserConn) *wingNotice {
	rt.controller = nil
	notify := rt.acks && rt.windowed
	rt.acks = false
	wc := h.wings[rt.wingID]
	if !notify || wc == nil {
		return nil
	}
	env := wp.Envelope{}
	env.Set("type", wp.TypePTYDetach)
	env.Set("session_id", rt.sessionID)
	h.injectIdentity(env, b.user, wc)
	return &wingNotice{wc: wc, data: env.Encode()}
}

// sendNotices sends what controllerLeft returned, without h.mu.
func (h *Hub) sendNotices(ns ...*wingNotice) {
	for _, n := range ns {
		if n != nil {
			h.toWing(context.Background(), n.wc, n.data)
		}
	}
}
