package winghub

import (
	"context"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

type browserConn struct {
	conn
	q         *sendQueue // every write to a user socket goes through it
	id        string
	user      UserIdentity
	queryWing string
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
	go b.q.run(wctx, ws, h.cfg.WriteTimeout, func(n int) { h.m.bytes.WithLabelValues("to_user").Add(float64(n)) })
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
	var notices []*wingNotice
	defer func() { h.sendNotices(notices...) }()
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.browsers, b)
	h.m.users.Set(float64(len(h.browsers)))
	for _, rt := range h.routes {
		if rt.controller == b {
			notices = append(notices, h.controllerLeft(rt, b))
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
