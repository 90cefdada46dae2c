package winghub

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Tokens in these tests are "wing:<user>" and "user:<user>"; real token
// checking is package wingtoken's and is tested there and end to end.
func testHub(t *testing.T, cfg Config) (*Hub, string) {
	t.Helper()
	cfg.VerifyWing = func(tok string) (WingIdentity, error) {
		if u, ok := strings.CutPrefix(tok, "wing:"); ok {
			return WingIdentity{UserID: u}, nil
		}
		return WingIdentity{}, errors.New("bad")
	}
	cfg.VerifyUser = func(tok string) (UserIdentity, error) {
		if u, ok := strings.CutPrefix(tok, "user:"); ok {
			return UserIdentity{UserID: u, Email: u + "@example"}, nil
		}
		return UserIdentity{}, errors.New("bad")
	}
	h, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return h, srv.URL
}

// peer is a test socket; a goroutine reads it, because a Read whose
// context expires closes a coder/websocket connection.
type peer struct {
	t   *testing.T
	ws  *websocket.Conn
	in  chan []byte
	err chan error
}

func dial(t *testing.T, url, tok string) *peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(1 << 20)
	t.Cleanup(func() { ws.CloseNow() })
	p := &peer{t: t, ws: ws, in: make(chan []byte, 64), err: make(chan error, 1)}
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				p.err <- err
				return
			}
			p.in <- b // buffered: read before err is sent
		}
	}()
	return p
}

// closed waits for the socket's read error.
func (p *peer) closed() error {
	select {
	case err := <-p.err:
		return err
	case <-time.After(5 * time.Second):
		p.t.Fatal("socket not closed")
		return nil
	}
}

func (p *peer) send(v any) {
	p.t.Helper()
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.ws.Write(ctx, websocket.MessageText, b); err != nil {
		p.t.Fatal(err)
	}
}

func (p *peer) read() map[string]any {
	p.t.Helper()
	select {
	case b := <-p.in: // frames before the close error
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	default:
	}
	select {
	case b := <-p.in:
		var m map[string]any
		json.Unmarshal(b, &m)
		return m
	case err := <-p.err:
		p.t.Fatal(err)
	case <-time.After(5 * time.Second):
		p.t.Fatal("no frame within 5s")
	}
	return nil
}

// noFrame asserts nothing arrives for a short while.
func (p *peer) noFrame() {
	p.t.Helper()
	select {
	case b := <-p.in:
		p.t.Fatalf("unexpected frame %s", b)
	case <-time.After(200 * time.Millisecond):
	}
}

func registerWing(t *testing.T, url, user, id string) *peer {
	w := dial(t, url+"/ws/wing", "wing:"+user)
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: id, PublicKey: "pk-" + id})
	if m := w.read(); m["type"] != "registered" || m["wing_id"] == id {
		t.Fatalf("registered: %v", m)
	}
	return w
}

func TestAuthBeforeUpgrade(t *testing.T) {
	_, url := testHub(t, Config{})
	for _, path := range []string{"/ws/wing?token=nope", "/ws/wing", "/ws/pty?token=wing:alice", "/ws/relay"} {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("Authorization", "Bearer nope")
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: %d, want 401", path, resp.StatusCode)
		}
	}
	resp, _ := http.Get(url + "/health")
	var h map[string]bool
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if resp.StatusCode != 200 || !h["ok"] {
		t.Fatal("health")
	}
	resp, _ = http.Get(url + "/api/app/wings")
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatal("wings list without a token")
	}
}

func TestRoutingAndInjection(t *testing.T) {
	h, url := testHub(t, Config{})
	w := registerWing(t, url, "alice", "box")
	registerWing(t, url, "bob", "bobs")

	req, _ := http.NewRequest("GET", url+"/api/app/wings", nil)
	req.Header.Set("Authorization", "Bearer user:alice")
	resp, _ := http.DefaultClient.Do(req)
	var list []wp.WingInfo
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list) != 1 || list[0].WingID != "box" || list[0].PublicKey != "pk-box" {
		t.Fatalf("wings: %+v", list)
	}

	b := dial(t, url+"/ws/pty", "user:alice") // no ?wing_id=
	b.send(map[string]any{"type": "pty.start", "session_id": "mine", "user_id": "evil", "public_key": "k", "extra": 7})
	start := w.read()
	sid, _ := start["session_id"].(string)
	if len(sid) != 8 || sid == "mine" || start["user_id"] != "alice" || start["org_role"] != "owner" || start["extra"] != float64(7) {
		t.Fatalf("pty.start at the wing: %v", start)
	}
	w.send(wp.Started{Type: wp.TypePTYStarted, SessionID: sid, PublicKey: "wk"})
	if m := b.read(); m["type"] != "pty.started" || m["session_id"] != sid {
		t.Fatalf("started: %v", m)
	}
	b.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: "ct"})
	if m := w.read(); m["type"] != "pty.input" || m["data"] != "ct" {
		t.Fatalf("input: %v", m)
	}
	// Another user cannot reach alice's wing or session.
	eve := dial(t, url+"/ws/pty?wing_id=box", "user:eve")
	eve.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: "x"})
	eve.send(map[string]any{"type": "pty.start", "wing_id": "box", "public_key": "k"})
	if m := eve.read(); m["type"] != "error" {
		t.Fatalf("eve: %v", m)
	}
	w.noFrame()

	// A spectator gets a viewer id; its input is dropped.
	v := dial(t, url+"/ws/pty", "user:alice")
	v.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, WingID: "box", PublicKey: "vk", Spectate: true})
	at := w.read()
	vid, _ := at["viewer_id"].(string)
	if at["type"] != "pty.attach" || len(vid) != 8 {
		t.Fatalf("spectate attach: %v", at)
	}
	v.send(wp.Input{Type: wp.TypePTYInput, SessionID: sid, Data: "x"})
	v.send(wp.SessionRef{Type: wp.TypePTYKill, SessionID: sid})
	w.noFrame()
	w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid, Data: "for-viewer", ViewerID: vid})
	if m := v.read(); m["data"] != "for-viewer" {
		t.Fatalf("viewer output: %v", m)
	}
	w.send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid, Data: "for-controller"})
	if m := b.read(); m["data"] != "for-controller" {
		t.Fatalf("controller output: %v", m)
	}
	// A spectate attach to an unknown session creates nothing.
	before := h.Stats().Routes
	v.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: "nosuch00", WingID: "box", PublicKey: "vk", Spectate: true})
	v.read()
	if h.Stats().Routes != before {
		t.Fatal("spectate created a route")
	}

	// Detach is not forwarded; output is dropped without a controller.
	b.send(wp.SessionRef{Type: wp.TypePTYDetach, SessionID: sid})
	w.noFrame()

	// Tunnel requests route by request id; identity injected.
	b.send(map[string]any{"type": "tunnel.req", "wing_id": "box", "request_id": "r1", "sender_pub": "p", "payload": "x", "sender_user_id": "evil"})
	if m := w.read(); m["sender_user_id"] != "alice" || m["request_id"] != "r1" {
		t.Fatalf("tunnel.req: %v", m)
	}
	w.send(wp.TunnelRes{Type: wp.TypeTunnelRes, RequestID: "r1", Payload: "y"})
	if m := b.read(); m["type"] != "tunnel.res" || m["payload"] != "y" {
		t.Fatalf("tunnel.res: %v", m)
	}
	if h.Stats().Tunnels != 0 {
		t.Fatal("tunnel mapping kept after tunnel.res")
	}

	// pty.exited without viewer_id goes to everyone and deletes the route.
	b.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: sid, WingID: "box", PublicKey: "k2"})
	w.read()
	w.send(wp.Exited{Type: wp.TypePTYExited, SessionID: sid, ExitCode: 3})
	if m := b.read(); m["type"] != "pty.exited" || m["exit_code"] != float64(3) {
		t.Fatalf("exited: %v", m)
	}
	if m := v.read(); m["type"] != "pty.exited" {
		t.Fatalf("viewer exited: %v", m)
	}
}

func TestReapAndOffline(t *testing.T) {
	h, url := testHub(t, Config{HeartbeatTimeout: 300 * time.Millisecond})
	w := registerWing(t, url, "alice", "box")
	b := dial(t, url+"/ws/pty", "user:alice")
	b.send(map[string]any{"type": "pty.start", "public_key": "k"})
	w.read()
	// The wing stays silent: it is closed, and the user told.
	if m := b.read(); m["type"] != "wing.offline" {
		t.Fatalf("got %v, want wing.offline", m)
	}
	if s := h.Stats(); s.Wings != 0 || s.Routes != 1 {
		t.Fatalf("after reaping: %+v (routes are kept)", s)
	}
}

func TestTunnelExpiry(t *testing.T) {
	h, url := testHub(t, Config{TunnelTimeout: 200 * time.Millisecond})
	w := registerWing(t, url, "alice", "box")
	b := dial(t, url+"/ws/relay?wing_id=box", "user:alice")
	b.send(map[string]any{"type": "tunnel.req", "request_id": "r1", "payload": "x"})
	w.read()
	deadline := time.Now().Add(5 * time.Second)
	for h.Stats().Tunnels != 0 {
		if time.Now().After(deadline) {
			t.Fatal("mapping not expired")
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.send(wp.TunnelRes{Type: wp.TypeTunnelRes, RequestID: "r1", Payload: "late"})
	b.noFrame()
}

func TestShutdownSendsRelayRestart(t *testing.T) {
	h, url := testHub(t, Config{})
	w := registerWing(t, url, "alice", "box")
	b := dial(t, url+"/ws/pty", "user:alice")
	for h.Stats().Users != 1 { // let the hub record the user socket
		time.Sleep(5 * time.Millisecond)
	}
	go h.Shutdown(context.Background())
	if m := w.read(); m["type"] != "relay.restart" {
		t.Fatalf("wing got %v", m)
	}
	if m := b.read(); m["type"] != "relay.restart" {
		t.Fatalf("user got %v", m)
	}
	if err := w.closed(); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("wing close: %v", err)
	}
}

func TestFirstFrameMustRegister(t *testing.T) {
	_, url := testHub(t, Config{})
	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Heartbeat{Type: wp.TypeWingHeartbeat, WingID: "x"})
	if m := w.read(); m["type"] != "error" {
		t.Fatalf("got %v", m)
	}
}

// TestWingIDBelongsToFirstUser: another user's wing cannot register under
// a wing id someone owns (it was taking over the owner's socket and
// sessions); the owner's own reconnects still replace the old socket.
func TestWingIDBelongsToFirstUser(t *testing.T) {
	_, url := testHub(t, Config{})
	alice := registerWing(t, url, "alice", "alicebox")

	mallory := dial(t, url+"/ws/wing", "wing:mallory")
	mallory.send(wp.Register{Type: wp.TypeWingRegister, WingID: "alicebox", PublicKey: "pk-mallory", Locked: true, AllowedCount: 1})
	if m := mallory.read(); m["type"] != "error" || !strings.Contains(m["message"].(string), "belongs to another user") {
		t.Fatalf("mallory's registration: %v, want an error naming the owner conflict", m)
	}
	if err := mallory.closed(); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("mallory's socket: %v, want closed with policy violation", err)
	}

	// alice's socket stays and gets alice's sessions, with her key listed.
	b := dial(t, url+"/ws/pty?wing_id=alicebox", "user:alice")
	b.send(map[string]any{"type": "pty.start", "public_key": "k"})
	if m := alice.read(); m["type"] != "pty.start" || m["user_id"] != "alice" {
		t.Fatalf("alice's wing: %v", m)
	}
	if list := wingsOf(t, url, "alice"); len(list) != 1 || list[0].PublicKey != "pk-alicebox" {
		t.Fatalf("alice's wings: %+v", list)
	}

	// alice reconnects (new socket, new key): it replaces the old one.
	alice2 := registerWing(t, url, "alice", "alicebox")
	if err := alice.closed(); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("alice's old socket: %v, want closed as replaced", err)
	}
	b.send(map[string]any{"type": "pty.start", "public_key": "k"})
	if m := alice2.read(); m["type"] != "pty.start" {
		t.Fatalf("alice's new socket: %v", m)
	}
}

// TestOwnerCheckFailureRefuses: when the owner store fails, the wing is
// refused (and retries), never registered unchecked.
func TestOwnerCheckFailureRefuses(t *testing.T) {
	_, url := testHub(t, Config{Owners: failingOwners{}})
	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: "box"})
	if m := w.read(); m["type"] != "error" || !strings.Contains(m["message"].(string), "cannot check") {
		t.Fatalf("got %v", m)
	}
	w.closed()
}

type failingOwners struct{}

func (failingOwners) ClaimWing(context.Context, string, string) (string, error) {
	return "", errors.New("database is down")
}

func wingsOf(t *testing.T, url, user string) []wp.WingInfo {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/api/app/wings", nil)
	req.Header.Set("Authorization", "Bearer user:"+user)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list []wp.WingInfo
	json.NewDecoder(resp.Body).Decode(&list)
	return list
}

// TestLockedWingReach: a locked wing with no allow list serves its owner
// only, so the hub routes nobody else to it; with an allow list the hub
// routes others and the wing decides.
func TestLockedWingReach(t *testing.T) {
	_, url := testHub(t, Config{})
	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: "box", PublicKey: "pk", Locked: true})
	w.read()
	if list := wingsOf(t, url, "mallory"); len(list) != 0 {
		t.Fatalf("mallory sees %+v", list)
	}
	m := dial(t, url+"/ws/relay?wing_id=box", "user:mallory")
	m.send(map[string]any{"type": "tunnel.req", "request_id": "r1", "payload": "x"})
	if f := m.read(); f["type"] != "error" {
		t.Fatalf("mallory's tunnel.req: %v", f)
	}
	w.noFrame()

	w.send(wp.WingConfig{Type: wp.TypeWingConfig, WingID: "box", Locked: true, AllowedCount: 1})
	deadline := time.Now().Add(5 * time.Second)
	for len(wingsOf(t, url, "bob")) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("wing.config not applied")
		}
		time.Sleep(10 * time.Millisecond)
	}
	bob := dial(t, url+"/ws/relay?wing_id=box", "user:bob")
	bob.send(map[string]any{"type": "tunnel.req", "request_id": "r2", "payload": "x", "sender_user_id": "alice"})
	if f := w.read(); f["sender_user_id"] != "bob" || f["sender_org_role"] != "member" {
		t.Fatalf("bob's tunnel.req at the wing: %v", f)
	}
}

// TestSessionFramesCarryIdentity: frames for a session the hub does not
// know (as after a relay restart) reach the ?wing_id= wing with the
// sender's relay-set identity, whatever the user put in them, so the wing
// can refuse a stranger's kill or resize.
func TestSessionFramesCarryIdentity(t *testing.T) {
	_, url := testHub(t, Config{})
	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: "box", PublicKey: "pk", Locked: true, AllowedCount: 1})
	w.read()
	m := dial(t, url+"/ws/pty?wing_id=box", "user:mallory")
	for _, f := range []map[string]any{
		{"type": "pty.kill", "session_id": "s1", "user_id": "alice", "org_role": "owner"},
		{"type": "pty.resize", "session_id": "s1", "cols": 10, "rows": 5, "user_id": "alice", "org_role": "owner"},
		{"type": "pty.input", "session_id": "s1", "data": "x", "user_id": "alice"},
		{"type": "pty.attention_ack", "session_id": "s1"},
	} {
		m.send(f)
		got := w.read()
		if got["type"] != f["type"] || got["session_id"] != "s1" || got["user_id"] != "mallory" || got["org_role"] != "member" {
			t.Fatalf("%s at the wing: %v, want mallory's identity", f["type"], got)
		}
	}
	// The owner's own frames say owner.
	a := dial(t, url+"/ws/pty?wing_id=box", "user:alice")
	a.send(map[string]any{"type": "pty.kill", "session_id": "s1"})
	if got := w.read(); got["user_id"] != "alice" || got["org_role"] != "owner" {
		t.Fatalf("alice's kill at the wing: %v", got)
	}
}

// TestRegisteredNamesOwner: registered carries the wing token's user (a
// warren addition the wing uses to recognise its owner by user_id).
func TestRegisteredNamesOwner(t *testing.T) {
	_, url := testHub(t, Config{})
	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: "box"})
	if m := w.read(); m["type"] != "registered" || m["user_id"] != "alice" {
		t.Fatalf("registered: %v", m)
	}
}
