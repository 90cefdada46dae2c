package winghub

import (
	"context"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Output flow control (docs/protocols/wing.md §2.12): the relay passes a
// controller's pty.ack to the wing like pty.input, and notes that the
// route's controller acknowledges. A wing then holds the session's output
// while the controller has a window of it unacknowledged, so when that
// controller leaves (pty.detach, its socket closing, the bandwidth cap),
// the wing is told with a pty.detach of its own, and stops waiting.

// wingNotice is a frame for a wing, sent once h.mu is released.
type wingNotice struct {
	wc   *wingConn
	data []byte
}

// controllerLeft clears b as rt's controller and returns the pty.detach
// to tell the wing when the controller acknowledged output; called with
// h.mu held, b being rt's controller.
func (h *Hub) controllerLeft(rt *route, b *browserConn) *wingNotice {
	rt.controller = nil
	acks := rt.acks
	rt.acks = false
	wc := h.wings[rt.wingID]
	if !acks || wc == nil {
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
