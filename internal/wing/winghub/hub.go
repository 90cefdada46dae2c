package winghub

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// WingIdentity is what a valid wing token says.
type WingIdentity struct {
	UserID string // owner
	WingID string // bound machine id, "" for any
	Pub    string // bound X25519 key, "" for none
}

// UserIdentity is what a valid user token says.
type UserIdentity struct {
	UserID      string
	Email       string
	DisplayName string
}

// Config configures a Hub.
type Config struct {
	// VerifyWing checks a wing token. Required.
	VerifyWing func(tok string) (WingIdentity, error)
	// VerifyUser checks a user token. Required.
	VerifyUser func(tok string) (UserIdentity, error)
	// Registerer receives the hub's metrics. Optional.
	Registerer prometheus.Registerer
	// HeartbeatTimeout closes a wing silent for this long. Default 90s
	// (three missed 30 s heartbeats).
	HeartbeatTimeout time.Duration
	// RegisterTimeout bounds the wait for wing.register. Default 10s.
	RegisterTimeout time.Duration
	// TunnelTimeout drops a request_id mapping with no reply frame for this
	// long. Default 120s.
	TunnelTimeout time.Duration
	// Bandwidth caps what each user receives of PTY output. Default off.
	Bandwidth Bandwidth
	// RelayPubKey is sent in registered.relay_pub_key. Default "".
	RelayPubKey string
	// BrowserQueueBytes bounds the frames waiting to be written to one
	// user socket; a socket that falls this far behind is closed (it
	// reattaches and gets a replay). Default DefaultBrowserQueueBytes
	// (8 MiB), at least wp.MaxFrame.
	BrowserQueueBytes int
	// Owners records who owns each wing id: the user whose wing first
	// registered it. Default: kept in memory for the hub's lifetime.
	Owners WingOwners
}

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

// Hub is the wing hub. Mount it with Register.
type Hub struct {
	cfg Config
	log *slog.Logger
	m   *hubMetrics
	bw  *meter // nil: no bandwidth limits

	mu       sync.Mutex
	wings    map[string]*wingConn  // by machine wing_id
	browsers map[*browserConn]bool // every live user socket
	routes   map[string]*route     // by session_id
	tunnels  map[string]*tunnelMap // by request_id
	nonces   map[string]time.Time  // session.attention dedupe
	closing  bool
	done     chan struct{}
	stopOnce sync.Once
}

type conn struct {
	ws  *websocket.Conn
	wmu sync.Mutex
}

func (c *conn) send(ctx context.Context, b []byte, timeout time.Duration) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.ws.Write(ctx, websocket.MessageText, b)
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

type browserConn struct {
	conn
	q         *sendQueue // every write to a user socket goes through it
	id        string
	user      UserIdentity
	queryWing string
}

type route struct {
	sessionID  string
	wingID     string // machine id
	owner      string // the wing's owner
	user       string // who started (or first attached) the session
	controller *browserConn
	viewers    map[string]*browserConn
}

type tunnelMap struct {
	browser *browserConn
	wingID  string
	timer   *time.Timer
}

const (
	forwardTimeout   = 5 * time.Second
	broadcastTimeout = 2 * time.Second
)

// New returns a Hub. Call Close (or Shutdown) when done.
func New(cfg Config, log *slog.Logger) (*Hub, error) {
	if cfg.VerifyWing == nil || cfg.VerifyUser == nil {
		return nil, errors.New("winghub: VerifyWing and VerifyUser are required")
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 90 * time.Second
	}
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = 10 * time.Second
	}
	if cfg.TunnelTimeout <= 0 {
		cfg.TunnelTimeout = 120 * time.Second
	}
	if cfg.BrowserQueueBytes <= 0 {
		cfg.BrowserQueueBytes = DefaultBrowserQueueBytes
	}
	cfg.BrowserQueueBytes = max(cfg.BrowserQueueBytes, wp.MaxFrame)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Owners == nil {
		cfg.Owners = &memOwners{owners: map[string]string{}}
	}
	h := &Hub{cfg: cfg, log: log, m: newMetrics(cfg.Registerer),
		wings: map[string]*wingConn{}, browsers: map[*browserConn]bool{}, routes: map[string]*route{},
		tunnels: map[string]*tunnelMap{}, nonces: map[string]time.Time{}, done: make(chan struct{})}
	if cfg.Bandwidth.on() {
		h.bw = newMeter(cfg.Bandwidth)
	}
	go h.reaper()
	return h, nil
}

// Register mounts the hub's routes on mux.
func (h *Hub) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /ws/wing", h.serveWing)
	mux.HandleFunc("GET /ws/pty", h.serveBrowser)
	mux.HandleFunc("GET /ws/relay", h.serveBrowser)
	mux.HandleFunc("GET /api/app/wings", h.listWings)
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

// ---- wings ----

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
	b, _ := wp.Encode(wp.Registered{Type: wp.TypeRegistered, WingID: wc.connID, RelayPubKey: h.cfg.RelayPubKey, UserID: wc.owner})
	if err := wc.send(ctx, b, forwardTimeout); err != nil {
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
	c.send(ctx, b, forwardTimeout)
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

func (h *Hub) fromWing(ctx context.Context, wc *wingConn, data []byte) {
	env, typ, err := wp.DecodeEnvelope(data)
	if err != nil {
		h.log.Debug("bad frame from wing", "wing", wc.machineID, "err", err)
		return
	}
	switch typ {
	case wp.TypeWingHeartbeat, wp.TypeWingRegister:
	case wp.TypeWingConfig:
		h.mu.Lock()
		wc.locked = env.Bool("locked")
		var n int
		json.Unmarshal(env["allowed_count"], &n)
		wc.allowedCount = n
		h.mu.Unlock()
	case wp.TypeAttention:
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
	case wp.TypeTunnelRes, wp.TypeTunnelStream:
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
	case wp.TypePTYStarted, wp.TypePTYOutput, wp.TypePTYPreview, wp.TypePTYBrowserOpen,
		wp.TypePasskeyChal, wp.TypePTYMigrated, wp.TypePTYFallback, wp.TypePTYExited:
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
		case rt.controller != nil:
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
	default:
		h.log.Debug("unknown frame from wing dropped", "wing", wc.machineID, "type", typ)
	}
}

// enqueue hands a frame to b's writer without waiting for the network: a
// slow user socket must not hold up the wing's read loop (docs/protocols/wing.md §3.2).
func (h *Hub) enqueue(b *browserConn, data []byte, at time.Time) {
	if _, overflowed := b.q.push(data, at); overflowed {
		h.m.slowUsers.Inc()
		h.log.Warn("user socket too slow; closing it (it can reattach)", "user", b.user.UserID, "conn", b.id,
			"queue_bytes", h.cfg.BrowserQueueBytes)
	}
}

// ---- users ----

func (h *Hub) serveBrowser(w http.ResponseWriter, r *http.Request) {
	tok := requestToken(r)
	user, err := h.cfg.VerifyUser(tok)
	if tok == "" || err != nil {
		h.m.authFailures.WithLabelValues("user").Inc()
		http.Error(w, "unauthorized: a valid user token is required", http.StatusUnauthorized)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true, Subprotocols: []string{BrowserSubprotocol}})
	if err != nil {
		return
	}
	ws.SetReadLimit(wp.MaxFrame)
	b := &browserConn{conn: conn{ws: ws}, q: newSendQueue(h.cfg.BrowserQueueBytes), id: uuid.NewString(), user: user, queryWing: r.URL.Query().Get("wing_id")}
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		ws.Close(websocket.StatusGoingAway, "relay shutting down")
		return
	}
	h.browsers[b] = true
	h.m.users.Set(float64(len(h.browsers)))
	h.mu.Unlock()
	ctx := r.Context()
	wctx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	defer func() { stopWriter(); <-b.q.done }()
	go b.q.run(wctx, ws, forwardTimeout, func(n int) { h.m.bytes.WithLabelValues("to_user").Add(float64(n)) })
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			break
		}
		h.m.frames.WithLabelValues("user").Inc()
		h.m.bytes.WithLabelValues("from_user").Add(float64(len(data)))
		h.fromBrowser(ctx, b, data)
	}
	ws.CloseNow()
	h.browserGone(b)
}

func (h *Hub) browserGone(b *browserConn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.browsers, b)
	h.m.users.Set(float64(len(h.browsers)))
	for _, rt := range h.routes {
		if rt.controller == b {
			rt.controller = nil
		}
		for id, v := range rt.viewers {
			if v == b {
				delete(rt.viewers, id)
			}
		}
	}
	for id, tm := range h.tunnels {
		if tm.browser == b {
			tm.timer.Stop()
			delete(h.tunnels, id)
		}
	}
	h.m.tunnels.Set(float64(len(h.tunnels)))
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

func (h *Hub) fromBrowser(ctx context.Context, b *browserConn, data []byte) {
	env, typ, err := wp.DecodeEnvelope(data)
	if err != nil {
		h.log.Debug("bad frame from user dropped", "err", err)
		return
	}
	switch typ {
	case wp.TypePTYStart:
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
		h.routes[sid] = &route{sessionID: sid, wingID: wc.machineID, owner: wc.owner, user: b.user.UserID, controller: b, viewers: map[string]*browserConn{}}
		h.m.sessions.Set(float64(len(h.routes)))
		h.m.started.Inc()
		h.mu.Unlock()
		env.Set("session_id", sid)
		h.injectIdentity(env, b.user, wc)
		h.toWing(ctx, wc, env.Encode())
	case wp.TypePTYAttach:
		sid := env.String("session_id")
		h.mu.Lock()
		wc := h.pickWing(b, env.String("wing_id"))
		rt := h.routes[sid]
		spectate := env.Bool("spectate")
		if rt != nil && !spectate && rt.owner != b.user.UserID && rt.user != b.user.UserID {
			h.mu.Unlock()
			h.reply(ctx, b, "session not found")
			return
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
			h.mu.Unlock()
			h.reply(ctx, b, "no wing connected")
			return
		}
		if spectate {
			if rt == nil {
				h.mu.Unlock()
				h.reply(ctx, b, "session not found")
				return
			}
			vid := newShortID()
			rt.viewers[vid] = b
			h.mu.Unlock()
			env.Set("viewer_id", vid)
			env.Set("user_id", b.user.UserID)
			env.Set("email", b.user.Email)
			env.Set("org_role", role(wc, b.user))
			for _, k := range []string{"display_name", "passkeys"} {
				delete(env, k)
			}
			h.toWing(ctx, wc, env.Encode())
			return
		}
		if rt == nil {
			rt = &route{sessionID: sid, wingID: wc.machineID, owner: wc.owner, user: b.user.UserID, viewers: map[string]*browserConn{}}
			h.routes[sid] = rt
			h.m.sessions.Set(float64(len(h.routes)))
		}
		rt.controller = b
		h.mu.Unlock()
		env.Set("user_id", b.user.UserID)
		env.Set("email", b.user.Email)
		env.Set("org_role", role(wc, b.user))
		// Identity fields the relay does not inject must not come from the user.
		for _, k := range []string{"viewer_id", "display_name", "passkeys"} {
			delete(env, k)
		}
		h.toWing(ctx, wc, env.Encode())
	case wp.TypePTYDetach:
		sid := env.String("session_id")
		h.mu.Lock()
		if rt := h.routes[sid]; rt != nil {
			if rt.controller == b {
				rt.controller = nil
			}
			for id, v := range rt.viewers {
				if v == b {
					delete(rt.viewers, id)
				}
			}
		}
		h.mu.Unlock()
	case wp.TypePTYInput, wp.TypePTYResize, wp.TypePTYKill, wp.TypePTYAttentionAk,
		wp.TypePasskeyResp, wp.TypePTYMigrate:
		sid := env.String("session_id")
		h.mu.Lock()
		var wc *wingConn
		if rt := h.routes[sid]; rt != nil {
			if rt.controller == b { // viewers and strangers are dropped
				wc = h.wings[rt.wingID]
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
	case wp.TypeTunnelReq:
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
	default:
		h.log.Debug("unknown frame from user dropped", "type", typ)
	}
}

func (h *Hub) expireTunnel(rid string, tm *tunnelMap) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.tunnels[rid] == tm {
		delete(h.tunnels, rid)
		h.m.tunnels.Set(float64(len(h.tunnels)))
	}
}

func (h *Hub) toWing(ctx context.Context, wc *wingConn, data []byte) {
	if err := wc.send(ctx, data, forwardTimeout); err != nil {
		wc.ws.CloseNow()
		return
	}
	h.m.bytes.WithLabelValues("to_wing").Add(float64(len(data)))
}

func newShortID() string { return uuid.NewString()[:8] }

// ---- liveness and shutdown ----

func (h *Hub) reaper() {
	tick := time.NewTicker(max(h.cfg.HeartbeatTimeout/10, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-h.done:
			return
		case now := <-tick.C:
			h.mu.Lock()
			var dead []*wingConn
			for _, wc := range h.wings {
				if now.Sub(wc.lastSeen) > h.cfg.HeartbeatTimeout {
					dead = append(dead, wc)
				}
			}
			for n, at := range h.nonces {
				if now.Sub(at) > 10*time.Minute {
					delete(h.nonces, n)
				}
			}
			h.mu.Unlock()
			for _, wc := range dead {
				h.log.Warn("wing missed 3 heartbeats; closing it", "wing", wc.machineID)
				h.m.reaped.Inc()
				// Close waits for the peer's close frame; a silent wing
				// will not send one, so do not hold the reaper for it.
				go wc.ws.Close(websocket.StatusPolicyViolation, "heartbeat timeout")
				h.wingGone(wc)
			}
		}
	}
}

// Shutdown tells every wing and user socket relay.restart, then closes the
// wings (and users) with StatusGoingAway. Call it before shutting down HTTP.
func (h *Hub) Shutdown(ctx context.Context) {
	h.mu.Lock()
	h.closing = true
	var all []*conn
	var wings []*wingConn
	for _, wc := range h.wings {
		all = append(all, &wc.conn)
		wings = append(wings, wc)
	}
	var users []*browserConn
	for b := range h.browsers {
		users = append(users, b)
	}
	h.mu.Unlock()
	msg := []byte(`{"type":"relay.restart"}`)
	// User sockets: relay.restart after what is queued, then the close,
	// both by the socket's writer.
	for _, b := range users {
		b.q.push(msg, time.Time{})
		b.q.closeAfter(websocket.StatusGoingAway, "relay restarting")
	}
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Add(1)
		go func() { defer wg.Done(); c.send(ctx, msg, broadcastTimeout) }()
	}
	wg.Wait()
	// Close waits for each peer's close frame (up to 5 s): in parallel.
	for _, wc := range wings {
		wg.Add(1)
		go func() { defer wg.Done(); wc.ws.Close(websocket.StatusGoingAway, "relay restarting") }()
	}
	for _, b := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-b.q.done:
			case <-ctx.Done():
				b.ws.CloseNow()
			}
		}()
	}
	wg.Wait()
	h.Close()
}

// Close stops the hub's background work.
func (h *Hub) Close() { h.stopOnce.Do(func() { close(h.done) }) }

// Stats is a snapshot for tests and debugging.
type Stats struct{ Wings, Users, Routes, Tunnels int }

// Stats returns current counts.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{len(h.wings), len(h.browsers), len(h.routes), len(h.tunnels)}
}
