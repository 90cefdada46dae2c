package winghub

import (
	"net/http"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnprovider"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// noteDirect follows a session between the relay and a direct channel by
// the wing's plaintext envelopes (the signals themselves are sealed);
// called with h.mu held.
func (h *Hub) noteDirect(rt *route, typ string) {
	switch typ {
	case wp.TypePTYMigrated:
		if !rt.direct {
			rt.direct = true
			h.m.migrated.Inc()
		}
	case wp.TypePTYFallback:
		if rt.direct {
			rt.direct = false
			h.m.fallbacks.Inc()
		}
	default:
		return
	}
	h.countDirect()
}

// countDirect sets the direct-sessions gauge; called with h.mu held.
func (h *Hub) countDirect() {
	n := 0
	for _, rt := range h.routes {
		if rt.direct {
			n++
		}
	}
	h.m.direct.Set(float64(n))
}

// ICE is what the hub hands authenticated wings and clients for direct
// sessions: STUN servers, and TURN servers with short-lived TURN REST
// credentials (coturn's use-auth-secret: username "<expiry>:<user id>",
// password base64(HMAC-SHA1(secret, username)), as the overlay's
// turn-rest provider computes them).
type ICE struct {
	// STUNURLs are stun: URLs. Default none.
	STUNURLs []string
	// TURNURLs are turn: or turns: URLs of servers sharing TURNSecret.
	// Default none.
	TURNURLs []string
	// TURNSecret is the TURN server's static-auth-secret; required with
	// TURNURLs.
	TURNSecret string
	// TTL is how long handed-out TURN credentials stay valid. Default 1h.
	TTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c ICE) config(user string) wp.ICEConfig {
	out := wp.ICEConfig{ICEServers: []wp.ICEServer{}}
	if len(c.STUNURLs) > 0 {
		out.ICEServers = append(out.ICEServers, wp.ICEServer{URLs: c.STUNURLs})
	}
	if len(c.TURNURLs) > 0 && c.TURNSecret != "" {
		ttl, now := c.TTL, time.Now
		if ttl <= 0 {
			ttl = time.Hour
		}
		if c.Now != nil {
			now = c.Now
		}
		name, pw := turnprovider.Credentials(c.TURNSecret, user, now(), ttl)
		out.ICEServers = append(out.ICEServers, wp.ICEServer{URLs: c.TURNURLs, Username: name, Credential: pw})
		out.TTL = int(ttl / time.Second)
	}
	return out
}

// serveICE is GET /api/app/ice: the caller's ICE servers.
func (h *Hub) serveICE(w http.ResponseWriter, r *http.Request) {
	tok := bearerToken(r)
	user, err := h.cfg.VerifyUser(tok)
	if tok == "" || err != nil {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid user token is required (Authorization: Bearer)"})
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, h.cfg.ICE.config(user.UserID))
}
