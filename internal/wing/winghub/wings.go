package winghub

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// WingOwners keeps the owner of each wing id.
type WingOwners interface {
	// ClaimWing makes userID the owner of wingID if it has none, and
	// returns the owner in force (userID, or whoever claimed it first).
	ClaimWing(ctx context.Context, wingID, userID string) (owner string, err error)
}

// memOwners is the default WingOwners.
type memOwners struct {
	mu     sync.Mutex
	owners map[string]string
}

func (m *memOwners) ClaimWing(_ context.Context, wingID, userID string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o, ok := m.owners[wingID]; ok {
		return o, nil
	}
	m.owners[wingID] = userID
	return userID, nil
}

type wingConn struct {
	conn
	connID       string
	machineID    string
	owner        string
	pub          string
	hostname     string
	platform     string
	version      string
	agents       []string // as wing.register listed them
	locked       bool
	allowedCount int
	lastSeen     time.Time // under Hub.mu
}

func (h *Hub) serveWing(w http.ResponseWriter, r *http.Request) {
	tok := requestToken(r)
	id, err := h.cfg.VerifyWing(tok)
	if tok == "" || err != nil {
		h.m.authFailures.WithLabelValues("wing").Inc()
		http.Error(w, "unauthorized: a valid wing token is required", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		return
	}
	ws.SetReadLimit(wp.MaxFrame)
	ctx := r.Context()
	wc := &wingConn{conn: conn{ws: ws}, connID: uuid.NewString(), owner: id.UserID}

	rctx, cancel := context.WithTimeout(ctx, h.cfg.RegisterTimeout)
	_, first, err := ws.Read(rctx)
	cancel()
	var reg wp.Register
	if err != nil || wp.Decode(first, &reg) != nil || reg.Type != wp.TypeWingRegister || reg.WingID == "" {
		h.sendError(ctx, &wc.conn, "first frame must be wing.register with a wing_id")
		ws.Close(websocket.StatusPolicyViolation, "expected wing.register")
		return
	}
	if id.WingID != "" && id.WingID != reg.WingID {
		h.sendError(ctx, &wc.conn, "this token is for wing "+id.WingID)
		ws.Close(websocket.StatusPolicyViolation, "wing id does not match the token")
		return
	}
	// A wing id belongs to the user who first registered it; another
	// user's wing under it is refused, and the owner's socket stays.
	owner, err := h.cfg.Owners.ClaimWing(ctx, reg.WingID, id.UserID)
	if err != nil {
		h.log.Error("cannot check the owner of a wing id; registration refused", "wing", reg.WingID, "user", id.UserID, "err", err)
		h.sendError(ctx, &wc.conn, "the relay cannot check who owns wing id "+reg.WingID+" right now; retrying later")
		ws.Close(websocket.StatusInternalError, "wing owner check failed")
		return
	}
	if owner != id.UserID {
		h.log.Warn("wing registration refused: the wing id belongs to another user", "wing", reg.WingID, "user", id.UserID, "owner", owner)
		h.m.ownerRefusals.Inc()
		h.sendError(ctx, &wc.conn, "wing id "+reg.WingID+" belongs to another user of this relay; set another serve.wing_id (or ask the relay admin to release it)")
		ws.Close(websocket.StatusPolicyViolation, "wing id belongs to another user")
		return
	}
	if reg.OrgSlug != "" {
		h.log.Info("org_slug ignored: warren has no orgs", "wing", reg.WingID, "org", reg.OrgSlug)
	}
	wc.machineID, wc.pub = reg.WingID, reg.PublicKey
	if id.Pub != "" {
		wc.pub = id.Pub
	}
	wc.hostname, wc.platform, wc.version = reg.Hostname, reg.Platform, reg.Version
	wc.agents = reg.Agents
	wc.locked, wc.allowedCount = reg.Locked, reg.AllowedCount

	if h.cfg.WingUp != nil {
		if err := h.cfg.WingUp(ctx, reg.WingID); err != nil {
			h.log.Error("cannot record where the wing is connected; registration refused", "wing", reg.WingID, "err", err)
			h.sendError(ctx, &wc.conn, "the relay cannot record wing "+reg.WingID+" right now; retrying later")
			ws.Close(websocket.StatusInternalError, "wing registration failed")
			return
		}
	}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	wc.lastSeen = time.Now()
	old := h.wings[wc.machineID]
	h.wings[wc.machineID] = wc
	h.m.wings.Set(float64(len(h.wings)))
	h.mu.Unlock()
	if old != nil {
		go old.ws.Close(websocket.StatusPolicyViolation, "replaced by a new connection of the same wing")
	}
	b, _ := wp.Encode(wp.Registered{Type: wp.TypeRegistered, WingID: wc.connID, RelayPubKey: h.cfg.RelayPubKey, UserID: wc.owner,
		ICEServers: h.cfg.ICE.config(wc.owner).ICEServers})
	if err := wc.send(ctx, b, h.cfg.WriteTimeout); err != nil {
		h.wingGone(wc)
		return
	}
	h.log.Info("wing registered", "wing", wc.machineID, "user", wc.owner, "conn", wc.connID)
	h.m.registrations.Inc()

	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			break
		}
		h.mu.Lock()
		wc.lastSeen = time.Now()
		h.mu.Unlock()
		h.m.frames.WithLabelValues("wing").Inc()
		h.m.bytes.WithLabelValues("from_wing").Add(float64(len(data)))
		h.fromWing(ctx, wc, data)
	}
	ws.CloseNow()
	h.wingGone(wc)
}

func (h *Hub) sendError(ctx context.Context, c *conn, msg string) {
	b, _ := wp.Encode(wp.Error{Type: wp.TypeError, Message: msg})
	c.send(ctx, b, h.cfg.WriteTimeout)
}

// wingGone unregisters wc (if still current) and tells the users on its
// routes. Routes are kept for reattach.
func (h *Hub) wingGone(wc *wingConn) {
	h.mu.Lock()
	if h.wings[wc.machineID] != wc {
		h.mu.Unlock()
		return
	}
	delete(h.wings, wc.machineID)
	h.m.wings.Set(float64(len(h.wings)))
	if h.cfg.WingDown != nil {
		defer h.cfg.WingDown(wc.machineID)
	}
	var notify []*browserConn
	seen := map[*browserConn]bool{}
	for _, rt := range h.routes {
		if rt.wingID != wc.machineID {
			continue
		}
		for _, b := range rt.all() {
			if !seen[b] {
				seen[b] = true
				notify = append(notify, b)
			}
		}
	}
	closing := h.closing
	h.mu.Unlock()
	h.log.Info("wing offline", "wing", wc.machineID, "conn", wc.connID)
	if closing {
		return
	}
	msg := []byte(`{"type":"wing.offline"}`)
	for _, b := range notify {
		h.enqueue(b, msg, time.Time{})
	}
}

func (h *Hub) toWing(ctx context.Context, wc *wingConn, data []byte) {
	if err := wc.send(ctx, data, h.cfg.WriteTimeout); err != nil {
		wc.ws.CloseNow()
		return
	}
	h.m.bytes.WithLabelValues("to_wing").Add(float64(len(data)))
}
