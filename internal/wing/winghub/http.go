package winghub

import (
	"encoding/json"
	"net/http"
	"strings"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Register mounts the hub's routes on mux.
func (h *Hub) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws/wing", h.serveWing)
	mux.HandleFunc("GET /ws/pty", h.serveBrowser)
	mux.HandleFunc("GET /ws/relay", h.serveBrowser)
	mux.HandleFunc("GET /api/app/wings", h.listWings)
	mux.HandleFunc("GET /api/app/ice", h.serveICE)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
}

// requestToken is ?token= (checked first), the Bearer header, or for
// browsers (which cannot set headers on a WebSocket, and should not put a
// token in a URL that ends up in logs) a "warren.token.<token>" entry in
// Sec-WebSocket-Protocol, offered next to BrowserSubprotocol.
func requestToken(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), tokenProtocolPrefix); ok {
				return t
			}
		}
	}
	return ""
}

// BrowserSubprotocol is the subprotocol the hub selects when a browser
// offers it together with its token (a warren addition; peers that offer
// no subprotocol are unaffected).
const BrowserSubprotocol = "warren.v1"

const tokenProtocolPrefix = "warren.token."

func bearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (h *Hub) listWings(w http.ResponseWriter, r *http.Request) {
	tok := bearerToken(r)
	user, err := h.cfg.VerifyUser(tok)
	if tok == "" || err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid user token is required (Authorization: Bearer)"})
		return
	}
	h.mu.Lock()
	out := []wp.WingInfo{}
	for _, wc := range h.wings {
		switch {
		case wc.owner == user.UserID:
			out = append(out, wp.WingInfo{WingID: wc.machineID, PublicKey: wc.pub, Locked: wc.locked, AllowedCount: wc.allowedCount,
				Hostname: wc.hostname, Platform: wc.platform, Version: wc.version, Agents: wc.agents})
		case canReach(wc, user):
			// A locked wing enforces its own allow list; others see only
			// what a tunnel client needs (the wing answers wing.info).
			out = append(out, wp.WingInfo{WingID: wc.machineID, PublicKey: wc.pub, Locked: true, AllowedCount: wc.allowedCount})
		}
	}
	h.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}
