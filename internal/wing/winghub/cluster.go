package winghub

import (
	"sort"

	"github.com/coder/websocket"
)

// The hooks a clustered relay-server uses to keep one connection per wing
// across its nodes; a single relay never needs them.

// Wings lists the machine ids of the wings connected here, sorted.
func (h *Hub) Wings() []string {
	h.mu.Lock()
	out := make([]string, 0, len(h.wings))
	for id := range h.wings {
		out = append(out, id)
	}
	h.mu.Unlock()
	sort.Strings(out)
	return out
}

// HasWing reports whether wingID is connected here.
func (h *Hub) HasWing(wingID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.wings[wingID] != nil
}

// DropWing closes the connection of wingID here, as a newer connection of
// the same wing on this relay would: the wing connected to another node.
// It reports whether one was closed.
func (h *Hub) DropWing(wingID, reason string) bool {
	h.mu.Lock()
	wc := h.wings[wingID]
	h.mu.Unlock()
	if wc == nil {
		return false
	}
	go wc.ws.Close(websocket.StatusPolicyViolation, reason)
	return true
}

// DropAll closes every wing connection here so the wings reconnect,
// through the load balancer, to any node. It returns how many it closed.
func (h *Hub) DropAll(reason string) int {
	h.mu.Lock()
	wcs := make([]*wingConn, 0, len(h.wings))
	for _, wc := range h.wings {
		wcs = append(wcs, wc)
	}
	h.mu.Unlock()
	for _, wc := range wcs {
		go wc.ws.Close(websocket.StatusGoingAway, reason)
	}
	return len(wcs)
}
