package hubtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// RawRelay is a relay that a test scripts frame by frame, to play a relay
// other than warren's hub (wingthing's, which sets fewer identity fields)
// against a real wing. It serves /ws/wing only and accepts any token.
type RawRelay struct {
	URL   string // base URL, http://127.0.0.1:port
	wings chan *RawWing
	// Registered is sent in answer to wing.register; nil sends
	// {"type":"registered","wing_id":"conn-1"}, as wingthing's relay does.
	Registered map[string]any
}

// RawWing is one wing connection to a RawRelay.
type RawWing struct {
	tb       testing.TB
	ws       *websocket.Conn
	in       chan map[string]any
	Register map[string]any // the wing's wing.register
	Token    string         // the Bearer token it dialled with
}

// StartRaw runs a RawRelay until the test ends.
func StartRaw(tb testing.TB) *RawRelay {
	tb.Helper()
	r := &RawRelay{wings: make(chan *RawWing, 16)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/ws/wing" {
			http.NotFound(w, req)
			return
		}
		ws, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(1 << 20)
		rw := &RawWing{tb: tb, ws: ws, in: make(chan map[string]any, 4096), Token: req.Header.Get("Authorization")}
		ctx := req.Context()
		_, b, err := ws.Read(ctx)
		if err != nil || json.Unmarshal(b, &rw.Register) != nil {
			ws.CloseNow()
			return
		}
		reg := r.Registered
		if reg == nil {
			reg = map[string]any{"type": "registered", "wing_id": "conn-1"}
		}
		if err := rw.write(ctx, reg); err != nil {
			return
		}
		r.wings <- rw
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				close(rw.in)
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			rw.in <- m
		}
	}))
	tb.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	r.URL = srv.URL
	return r
}

// Accept waits for the next wing to register.
func (r *RawRelay) Accept(tb testing.TB) *RawWing {
	tb.Helper()
	select {
	case w := <-r.wings:
		return w
	case <-time.After(30 * time.Second):
		tb.Fatal("no wing registered with the raw relay within 30s")
		return nil
	}
}

func (w *RawWing) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return w.ws.Write(ctx, websocket.MessageText, b)
}

// Send writes one frame to the wing.
func (w *RawWing) Send(v any) {
	w.tb.Helper()
	if err := w.write(context.Background(), v); err != nil {
		w.tb.Fatal(err)
	}
}

// ReadType returns the next frame of type typ from the wing, skipping
// others (heartbeats); it fails after 20s or when the wing hangs up.
func (w *RawWing) ReadType(typ string) map[string]any {
	w.tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-w.in:
			if !ok {
				w.tb.Fatalf("wing hung up while waiting for %s", typ)
			}
			if m["type"] == typ {
				return m
			}
		case <-deadline:
			w.tb.Fatalf("no %s from the wing within 20s", typ)
		}
	}
}

// Next returns the next frame from the wing that is not a heartbeat.
func (w *RawWing) Next() map[string]any {
	w.tb.Helper()
	return w.NextNot()
}

// NextNot returns the next frame whose type is neither a heartbeat nor one
// of skip: e.g. the answer to a request sent while a session's output may
// still be arriving.
func (w *RawWing) NextNot(skip ...string) map[string]any {
	w.tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case m, ok := <-w.in:
			if !ok {
				w.tb.Fatal("wing hung up")
			}
			t, _ := m["type"].(string)
			if t != "wing.heartbeat" && !slices.Contains(skip, t) {
				return m
			}
		case <-deadline:
			w.tb.Fatal("no frame from the wing within 20s")
		}
	}
}
