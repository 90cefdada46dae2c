package wingagent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/fakeclock"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	"github.com/warrenhq/warren/internal/wing/winghub"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// testHub is testRelay with the hub exposed and its config adjustable.
func testHub(tb testing.TB, mod func(*winghub.Config)) (string, *winghub.Hub) {
	tb.Helper()
	cfg := winghub.Config{
		VerifyWing: func(tok string) (winghub.WingIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "wing:"); ok {
				return winghub.WingIdentity{UserID: u}, nil
			}
			return winghub.WingIdentity{}, errors.New("bad")
		},
		VerifyUser: func(tok string) (winghub.UserIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "user:"); ok {
				return winghub.UserIdentity{UserID: u, Email: u + "@example.com"}, nil
			}
			return winghub.UserIdentity{}, errors.New("bad")
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := winghub.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() { h.Close(); srv.CloseClientConnections(); srv.Close() })
	return srv.URL, h
}

func newRawUserAs(t *testing.T, url, user string) *rawUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/ws/pty?wing_id=box",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer user:" + user}}})
	if err != nil {
		t.Fatal(err)
	}
	ws.SetReadLimit(wp.MaxFrame)
	key, _ := wp.GenerateKey()
	u := &rawUser{t: t, ws: ws, key: key, in: make(chan map[string]any, 4096)}
	t.Cleanup(func() { ws.CloseNow() })
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				close(u.in)
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			u.in <- m
		}
	}()
	return u
}

// readType reads frames until one of type typ.
func (u *rawUser) readType(typ string) map[string]any {
	u.t.Helper()
	for {
		m := u.read()
		if m["type"] == typ {
			return m
		}
	}
}

func client(url, user string) *wingclient.Client {
	return &wingclient.Client{RelayURL: url, Token: "user:" + user}
}

func openTunnel(t *testing.T, url, user string) *wingclient.Tunnel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tn, err := client(url, user).OpenTunnel(ctx, "box")
	if err != nil {
		t.Fatalf("open tunnel as %s: %v", user, err)
	}
	t.Cleanup(tn.Close)
	return tn
}

func request(t *testing.T, tn *wingclient.Tunnel, req map[string]any, out any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return tn.Request(ctx, req, out)
}

func mustRequest(t *testing.T, tn *wingclient.Tunnel, req map[string]any, out any) {
	t.Helper()
	if err := request(t, tn, req, out); err != nil {
		t.Fatalf("%v: %v", req["type"], err)
	}
}

// bufWriter collects session output.
type bufWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *bufWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *bufWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

func (w *bufWriter) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(w.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in output:\n%q", s, w.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runSession opens a session as user and runs it in the background.
func runSession(t *testing.T, url, user string, opts wingclient.SessionOptions) (*wingclient.Session, *bufWriter, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	opts.WingID = "box"
	s, err := client(url, user).Open(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("open session as %s: %v", user, err)
	}
	out := &bufWriter{}
	done := make(chan error, 1)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		_, err := s.Run(ctx, out, func(ev wingclient.Event) {
			if ev.Kind == "started" || ev.Kind == "reattached" {
				once.Do(func() { close(started) })
			}
		}, 0)
		done <- err
	}()
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	select {
	case <-started:
	case err := <-done:
		done <- err
		return s, out, done
	case <-time.After(15 * time.Second):
		t.Fatal("session did not start")
	}
	return s, out, done
}

// TestTunnelRequests runs every request type through the real hub:
// wing.info, sessions.list, dir.list (with its prefix filter),
// sessions.history, pty.kill, a streamed audit.request, and unknown
// types; the hub holds no request mapping afterwards.
func TestTunnelRequests(t *testing.T) {
	url, hub := testHub(t, nil)
	startAgent(t, url, func(c *Config) { c.Hostname = "tunnelhost"; c.Version = "v9" })
	tn := openTunnel(t, url, "alice")

	var info struct {
		Hostname, Platform, Version string
		Locked                      bool
		Agents                      []string
	}
	mustRequest(t, tn, map[string]any{"type": "wing.info"}, &info)
	if info.Hostname != "tunnelhost" || info.Version != "v9" || info.Platform == "" || info.Locked {
		t.Fatalf("wing.info: %+v", info)
	}

	sess, out, _ := runSession(t, url, "alice", wingclient.SessionOptions{Command: "head -c 150000 /dev/zero | tr '\\0' z; echo; echo MARK-$((6*7)); sleep 100"})
	out.waitFor(t, "MARK-42")
	var list struct {
		Sessions []struct {
			SessionID string `json:"session_id"`
			UserID    string `json:"user_id"`
			Agent     string `json:"agent"`
		} `json:"sessions"`
	}
	mustRequest(t, tn, map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].SessionID != sess.ID() || list.Sessions[0].UserID != "alice" {
		t.Fatalf("sessions.list: %+v", list)
	}

	// audit.request streams the replay in several tunnel.stream frames.
	var got []byte
	frames := 0
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := tn.Stream(ctx, map[string]any{"type": "audit.request", "session_id": sess.ID(), "kind": "replay"}, func(p []byte) error {
		frames++
		var c struct {
			Data string `json:"data"`
			Done bool   `json:"done"`
		}
		json.Unmarshal(p, &c)
		b, _ := base64.StdEncoding.DecodeString(c.Data)
		got = append(got, b...)
		return nil
	})
	cancel()
	if err != nil || frames < 3 || !bytes.Contains(got, []byte("MARK-42")) {
		t.Fatalf("audit.request: err=%v frames=%d bytes=%d", err, frames, len(got))
	}

	dir := t.TempDir()
	for _, d := range []string{"alpha", "apple", "beta", ".hidden"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644)
	type entries struct {
		Entries []struct {
			Name  string `json:"name"`
			IsDir bool   `json:"is_dir"`
			Path  string `json:"path"`
		} `json:"entries"`
	}
	names := func(e entries) string {
		var n []string
		for _, x := range e.Entries {
			n = append(n, x.Name)
		}
		return strings.Join(n, ",")
	}
	var ents entries
	mustRequest(t, tn, map[string]any{"type": "dir.list", "path": dir}, &ents)
	if names(ents) != "alpha,apple,beta" || ents.Entries[0].Path != filepath.Join(dir, "alpha") || !ents.Entries[0].IsDir {
		t.Fatalf("dir.list: %+v", ents)
	}
	ents = entries{}
	mustRequest(t, tn, map[string]any{"type": "dir.list", "path": filepath.Join(dir, "ap")}, &ents)
	if names(ents) != "apple" {
		t.Fatalf("dir.list prefix: %+v", ents)
	}
	if err := request(t, tn, map[string]any{"type": "dir.list", "path": "/nonexistent-dir/x/y"}, nil); err == nil {
		t.Fatal("dir.list of a missing directory succeeded")
	}

	// pty.kill ends the session; it then shows in sessions.history.
	mustRequest(t, tn, map[string]any{"type": "pty.kill", "session_id": sess.ID()}, nil)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var hist struct {
			Sessions []struct {
				SessionID string `json:"session_id"`
				ExitCode  *int   `json:"exit_code"`
			} `json:"sessions"`
			Total int `json:"total"`
		}
		mustRequest(t, tn, map[string]any{"type": "sessions.history", "offset": 0, "limit": 10}, &hist)
		if hist.Total == 1 && hist.Sessions[0].SessionID == sess.ID() && hist.Sessions[0].ExitCode != nil && *hist.Sessions[0].ExitCode >= 128 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions.history: %+v", hist)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := request(t, tn, map[string]any{"type": "pty.kill", "session_id": "nosuch"}, nil); err == nil || !strings.Contains(err.Error(), "session not found") {
		t.Fatalf("pty.kill unknown: %v", err)
	}
	if err := request(t, tn, map[string]any{"type": "webrtc.offer"}, nil); err == nil || err.Error() != "unsupported: webrtc.offer" {
		t.Fatalf("webrtc.offer: %v", err)
	}
	if err := request(t, tn, map[string]any{"type": "frobnicate"}, nil); err == nil || err.Error() != "unsupported: frobnicate" {
		t.Fatalf("unknown: %v", err)
	}
	if st := hub.Stats(); st.Tunnels != 0 {
		t.Fatalf("hub still maps %d tunnel requests", st.Tunnels)
	}
}

// TestTunnelMappingExpires: a request the wing drops (its payload does not
// decrypt) leaves a mapping in the hub until the tunnel timeout.
func TestTunnelMappingExpires(t *testing.T) {
	url, hub := testHub(t, func(c *winghub.Config) { c.TunnelTimeout = 300 * time.Millisecond })
	startAgent(t, url, nil)
	u := newRawUser(t, url)
	u.send(wp.TunnelReq{Type: wp.TypeTunnelReq, WingID: "box", RequestID: "r1", SenderPub: wp.PublicKeyString(u.key), Payload: "bm90IGNpcGhlcnRleHQgYXQgYWxsIG5vIG5v"})
	deadline := time.Now().Add(10 * time.Second)
	seen := false
	for {
		n := hub.Stats().Tunnels
		if n == 1 {
			seen = true
		}
		if seen && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mapping seen=%v, now %d", seen, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLockAndAllowList: a locked wing serves its owner and the allowed
// users, refuses others (sessions and requests), the owner edits the list
// through the tunnel, and SetAccess (what SIGHUP does) keeps sessions.
func TestLockAndAllowList(t *testing.T) {
	url, _ := testHub(t, nil)
	a := startAgent(t, url, func(c *Config) { c.Access = Access{Locked: true, Allow: []AllowEntry{{User: "bob"}}} })

	// bob is allowed: requests and sessions work.
	bob := openTunnel(t, url, "bob")
	mustRequest(t, bob, map[string]any{"type": "wing.info"}, nil)
	_, bobOut, _ := runSession(t, url, "bob", wingclient.SessionOptions{Command: "echo BOB-$((1+1)); sleep 100"})
	bobOut.waitFor(t, "BOB-2")

	// carol is not.
	carol := openTunnel(t, url, "carol")
	if err := request(t, carol, map[string]any{"type": "wing.info"}, nil); err == nil || err.Error() != "not_allowed" {
		t.Fatalf("carol wing.info: %v", err)
	}
	cu := newRawUserAs(t, url, "carol")
	cu.send(wp.Start{Type: wp.TypePTYStart, WingID: "box", PublicKey: wp.PublicKeyString(cu.key)})
	if m := cu.readType("pty.exited"); m["error"] != "not_allowed" {
		t.Fatalf("carol pty.start: %v", m)
	}
	// Only the owner edits the list.
	if err := request(t, bob, map[string]any{"type": "allow.add", "user": "carol"}, nil); err == nil || err.Error() != "not_allowed" {
		t.Fatalf("bob allow.add: %v", err)
	}
	alice := openTunnel(t, url, "alice")
	var res struct {
		Changed      bool `json:"changed"`
		AllowedCount int  `json:"allowed_count"`
	}
	mustRequest(t, alice, map[string]any{"type": "allow.add", "user": "carol@example.com"}, &res)
	if !res.Changed || res.AllowedCount != 2 {
		t.Fatalf("allow.add: %+v", res)
	}
	mustRequest(t, carol, map[string]any{"type": "wing.info"}, nil) // by email
	var al struct {
		Locked  bool `json:"locked"`
		Allowed []struct {
			User string `json:"user"`
		} `json:"allowed"`
	}
	mustRequest(t, alice, map[string]any{"type": "allow.list"}, &al)
	if !al.Locked || len(al.Allowed) != 2 || al.Allowed[1].User != "carol@example.com" {
		t.Fatalf("allow.list: %+v", al)
	}
	// The relay learns the count from wing.config.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ws, err := client(url, "alice").Wings(context.Background())
		if err == nil && len(ws) == 1 && ws[0].AllowedCount == 2 && ws[0].Locked {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("wings: %+v %v", ws, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mustRequest(t, alice, map[string]any{"type": "allow.remove", "user": "carol@example.com"}, &res)
	if err := request(t, carol, map[string]any{"type": "wing.info"}, nil); err == nil || err.Error() != "not_allowed" {
		t.Fatalf("carol after remove: %v", err)
	}

	// Reload: unlock. bob's running session survives; the owner still sees
	// it; the relay no longer lists the wing to bob.
	a.SetAccess(context.Background(), Access{})
	var list struct {
		Sessions []struct {
			UserID string `json:"user_id"`
		} `json:"sessions"`
	}
	mustRequest(t, alice, map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].UserID != "bob" {
		t.Fatalf("sessions after reload: %+v", list)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		ws, _ := client(url, "bob").Wings(context.Background())
		if len(ws) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob still sees %+v", ws)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(bobOut.String(), "exited") || a.Sessions() != 1 {
		t.Fatalf("session dropped by the reload: %d sessions", a.Sessions())
	}
}

// TestSpectatorReadOnly: a spectator sees the controller's session with
// its own key; its input and kill are dropped; a spectate attach to an
// unknown session creates nothing.
func TestSpectatorReadOnly(t *testing.T) {
	reg := prometheus.NewRegistry()
	url, hub := testHub(t, func(c *winghub.Config) { c.Registerer = reg })
	startAgent(t, url, func(c *Config) { c.Spectate = true })
	ctl, ctlOut, _ := runSession(t, url, "alice", wingclient.SessionOptions{Cols: 80, Rows: 24})
	ctx := context.Background()
	ctl.Input(ctx, []byte("echo before-$((1+1))\n"))
	ctlOut.waitFor(t, "before-2")

	spec, specOut, _ := runSession(t, url, "alice", wingclient.SessionOptions{SessionID: ctl.ID(), Spectate: true})
	if spec.ViewerID() == "" {
		t.Fatal("no viewer id")
	}
	specOut.waitFor(t, "before-2") // the replay
	spec.Input(ctx, []byte("echo SPECTATOR-$((3+4))\n"))
	spec.Kill(ctx)
	// Both dropped by the relay before the controller types again (had
	// they been forwarded, the wing would have got them first).
	deadline := time.Now().Add(10 * time.Second)
	for counter(t, reg, "warren_wing_hub_session_frames_dropped_total") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("relay dropped %v spectator frames, want 2", counter(t, reg, "warren_wing_hub_session_frames_dropped_total"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctl.Input(ctx, []byte("echo after-$((2+3))\n"))
	ctlOut.waitFor(t, "after-5")
	specOut.waitFor(t, "after-5")
	if strings.Contains(ctlOut.String(), "SPECTATOR-7") || strings.Contains(specOut.String(), "SPECTATOR-7") {
		t.Fatal("spectator input reached the session")
	}

	routes := hub.Stats().Routes
	u := newRawUser(t, url)
	u.send(wp.Attach{Type: wp.TypePTYAttach, SessionID: "nosuch00", WingID: "box", PublicKey: wp.PublicKeyString(u.key), Spectate: true})
	if m := u.readType("error"); m["message"] != "session not found" {
		t.Fatalf("spectate unknown: %v", m)
	}
	if hub.Stats().Routes != routes {
		t.Fatal("spectate attach created a route")
	}
}

// TestInputTypedAtStart: keys typed as soon as the session starts (from
// the "started" event, which runs before the client has finished handling
// pty.started) are numbered from 0 like any other, and the keys after them
// follow on. The client used to restart its input numbering after the
// event: the next keys went out with offset 0 again, and the wing dropped
// them as a duplicate (TestSpectatorReadOnly failed so under load).
func TestInputTypedAtStart(t *testing.T) {
	url, _ := testHub(t, nil)
	startAgent(t, url, nil)
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client(url, "alice").Open(ctx, wingclient.SessionOptions{WingID: "box", Cols: 80, Rows: 24})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := &bufWriter{}
	done := make(chan error, 1)
	go func() {
		_, err := s.Run(ctx, out, func(ev wingclient.Event) {
			if ev.Kind == "started" {
				if err := s.Input(ctx, []byte("echo one-$((0+1))\n")); err != nil {
					t.Errorf("input at start: %v", err)
				}
			}
		}, 0)
		done <- err
	}()
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	out.waitFor(t, "one-1")
	s.Input(ctx, []byte("echo two-$((1+1))\n"))
	out.waitFor(t, "two-2")
}

func TestSpectateDisabled(t *testing.T) {
	url, _ := testHub(t, nil)
	startAgent(t, url, nil)
	ctl, _, _ := runSession(t, url, "alice", wingclient.SessionOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client(url, "alice").Open(ctx, wingclient.SessionOptions{WingID: "box", SessionID: ctl.ID(), Spectate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Run(ctx, &bufWriter{}, nil, 0)
	var re *wingclient.RemoteError
	if !errors.As(err, &re) || re.Msg != "spectate not enabled" {
		t.Fatalf("spectate on a wing without it: %v", err)
	}
}

// testPasskey is a P-256 key standing in for an authenticator.
type testPasskey struct{ priv *ecdsa.PrivateKey }

func newTestPasskey(t *testing.T) *testPasskey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testPasskey{k}
}

func (p *testPasskey) public() []byte {
	b, _ := p.priv.PublicKey.Bytes() // 0x04 ‖ X ‖ Y
	return b[1:]
}

// assert signs a WebAuthn assertion for challenge (base64url).
func (p *testPasskey) assert(t *testing.T, challenge string) wp.PasskeyResponse {
	cdj, _ := json.Marshal(map[string]string{"type": "webauthn.get", "challenge": challenge, "origin": "https://relay.example"})
	ad := make([]byte, 37)
	rand.Read(ad)
	ch := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte{}, ad...), ch[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, p.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return wp.PasskeyResponse{Type: wp.TypePasskeyResp, CredentialID: "Y3JlZC0x",
		AuthenticatorData: base64.StdEncoding.EncodeToString(ad), ClientDataJSON: base64.StdEncoding.EncodeToString(cdj),
		Signature: base64.StdEncoding.EncodeToString(sig)}
}

// TestPasskeyGate: a user with a passkey on the allow list must answer a
// challenge before a session starts; the auth token then skips it until
// it expires; a wrong key or a replayed challenge fails. The tunnel path
// (passkey.challenge, passkey.auth) works the same way.
func TestPasskeyGate(t *testing.T) {
	url, _ := testHub(t, nil)
	pk := newTestPasskey(t)
	clock := fakeclock.Running()
	a := startAgent(t, url, func(c *Config) {
		c.Access = Access{Allow: []AllowEntry{{User: "alice", Passkeys: []Passkey{{CredentialID: "Y3JlZC0x", PublicKey: pk.public()}}}}}
		c.PasskeyTTL = time.Hour
		c.Now = clock.Now
	})

	start := func(u *rawUser, extra func(*wp.Start)) {
		m := wp.Start{Type: wp.TypePTYStart, WingID: "box", PublicKey: wp.PublicKeyString(u.key), Command: u.sealCommand(a, "echo ok; sleep 100")}
		if extra != nil {
			extra(&m)
		}
		u.send(m)
	}
	// No credential id: refused.
	u := newRawUser(t, url)
	start(u, nil)
	if m := u.readType("pty.exited"); m["error"] != "passkey required" {
		t.Fatalf("no credential: %v", m)
	}
	// The right key: started with an auth token.
	start(u, func(m *wp.Start) { m.PasskeyCredentialID = "Y3JlZC0x" })
	ch := u.readType("passkey.challenge")
	resp := pk.assert(t, ch["challenge"].(string))
	resp.SessionID = ch["session_id"].(string)
	u.send(resp)
	st := u.readType("pty.started")
	tok, _ := st["auth_token"].(string)
	if len(tok) != 64 {
		t.Fatalf("pty.started: %v", st)
	}
	// The token skips the challenge.
	u2 := newRawUser(t, url)
	start(u2, func(m *wp.Start) { m.AuthToken = tok })
	if m := u2.read(); m["type"] != "pty.started" {
		t.Fatalf("with a token: %v", m)
	}
	// A wrong key fails.
	u3 := newRawUser(t, url)
	start(u3, func(m *wp.Start) { m.PasskeyCredentialID = "Y3JlZC0x" })
	ch = u3.readType("passkey.challenge")
	resp = newTestPasskey(t).assert(t, ch["challenge"].(string))
	resp.SessionID = ch["session_id"].(string)
	u3.send(resp)
	if m := u3.readType("pty.exited"); m["error"] != "invalid passkey signature" {
		t.Fatalf("wrong key: %v", m)
	}
	// The right key over another challenge fails.
	u4 := newRawUser(t, url)
	start(u4, func(m *wp.Start) { m.PasskeyCredentialID = "Y3JlZC0x" })
	ch = u4.readType("passkey.challenge")
	resp = pk.assert(t, base64.RawURLEncoding.EncodeToString(make([]byte, 32)))
	resp.SessionID = ch["session_id"].(string)
	u4.send(resp)
	if m := u4.readType("pty.exited"); m["error"] != "invalid passkey signature" {
		t.Fatalf("wrong challenge: %v", m)
	}

	// Tunnel path.
	tn := openTunnel(t, url, "alice")
	if err := request(t, tn, map[string]any{"type": "wing.info"}, nil); err == nil || err.Error() != "passkey_required" {
		t.Fatalf("wing.info without token: %v", err)
	}
	var c struct{ Challenge string }
	mustRequest(t, tn, map[string]any{"type": "passkey.challenge"}, &c)
	bad := newTestPasskey(t).assert(t, c.Challenge)
	if err := request(t, tn, map[string]any{"type": "passkey.auth", "credential_id": bad.CredentialID, "authenticator_data": bad.AuthenticatorData,
		"client_data_json": bad.ClientDataJSON, "signature": bad.Signature}, nil); err == nil || err.Error() != "invalid passkey signature" {
		t.Fatalf("passkey.auth with a wrong key: %v", err)
	}
	mustRequest(t, tn, map[string]any{"type": "passkey.challenge"}, &c)
	good := pk.assert(t, c.Challenge)
	var auth struct {
		AuthToken string `json:"auth_token"`
	}
	mustRequest(t, tn, map[string]any{"type": "passkey.auth", "credential_id": good.CredentialID, "authenticator_data": good.AuthenticatorData,
		"client_data_json": good.ClientDataJSON, "signature": good.Signature}, &auth)
	tn.AuthToken = auth.AuthToken
	mustRequest(t, tn, map[string]any{"type": "wing.info"}, nil)
	// The token expires (TTL 1h); then the gate is back.
	clock.Advance(time.Hour + time.Second)
	if err := request(t, tn, map[string]any{"type": "wing.info"}, nil); err == nil || err.Error() != "passkey_required" {
		t.Fatalf("wing.info with an expired token: %v", err)
	}
}

// captureHandler records log messages and their attributes.
type captureHandler struct {
	mu   sync.Mutex
	recs []string
}

func (h *captureHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *captureHandler) Handle(_ context.Context, r slog.Record) error {
	s := r.Message
	r.Attrs(func(a slog.Attr) bool { s += " " + a.Key + "=" + a.Value.String(); return true })
	h.mu.Lock()
	h.recs = append(h.recs, s)
	h.mu.Unlock()
	return nil
}
func (h *captureHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *captureHandler) WithGroup(string) slog.Handler      { return h }
func (h *captureHandler) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.recs, "\n")
}

// TestBandwidthCap: with a monthly cap, the user gets bandwidth.exceeded
// and its socket is closed; the wing never gets that frame and the session
// keeps running.
func TestBandwidthCap(t *testing.T) {
	url, hub := testHub(t, func(c *winghub.Config) { c.Bandwidth = winghub.Bandwidth{MonthlyCap: 64 << 10} })
	logs := &captureHandler{}
	key, _ := LoadOrCreateIdentity(t.TempDir() + "/id.key")
	connected := make(chan struct{}, 1)
	a, err := New(Config{RelayURL: url, Token: "wing:alice", WingID: "box", Key: key, Shell: "/bin/sh", AllowCommands: true,
		OnState: func(s State) {
			if s == StateConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}}, slog.New(logs))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-connected

	u := newRawUser(t, url)
	u.send(wp.Start{Type: wp.TypePTYStart, WingID: "box", PublicKey: wp.PublicKeyString(u.key),
		Command: u.sealCommand(a, "head -c 300000 /dev/zero | tr '\\0' b; sleep 100")})
	var exceeded map[string]any
	for m := range u.in {
		if m["type"] == "bandwidth.exceeded" {
			exceeded = m
		}
	}
	// u.in is closed: the relay closed the socket.
	if exceeded == nil || !strings.HasPrefix(exceeded["message"].(string), "Monthly bandwidth limit exceeded.") {
		t.Fatalf("no bandwidth.exceeded before the close: %v", exceeded)
	}
	if used := hub.Usage("alice"); used <= 64<<10 {
		t.Fatalf("usage %d", used)
	}
	if a.Sessions() != 1 {
		t.Fatalf("the session ended: %d", a.Sessions())
	}
	// A reply to a request through the wing proves the wing has handled
	// every frame the relay sent it before: the relay writes to the wing
	// in order and the wing reads (and would log) frames in order.
	// Requests are not metered, so alice still gets one.
	var list struct {
		Sessions []struct{} `json:"sessions"`
	}
	mustRequest(t, openTunnel(t, url, "alice"), map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 {
		t.Fatalf("sessions after the cap: %+v", list)
	}
	if strings.Contains(logs.String(), "bandwidth.exceeded") {
		t.Fatalf("the wing got bandwidth.exceeded:\n%s", logs)
	}
}

// TestBrowserTokenSubprotocol: browsers cannot set headers on a WebSocket;
// the hub takes the token from a "warren.token.<tok>" subprotocol entry
// and selects "warren.v1".
func TestBrowserTokenSubprotocol(t *testing.T) {
	url, _ := testHub(t, nil)
	startAgent(t, url, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/ws/pty?wing_id=box",
		&websocket.DialOptions{Subprotocols: []string{winghub.BrowserSubprotocol, "warren.token.user:alice"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if ws.Subprotocol() != winghub.BrowserSubprotocol {
		t.Fatalf("subprotocol %q", ws.Subprotocol())
	}
	_, _, err = websocket.Dial(ctx, strings.Replace(url, "http", "ws", 1)+"/ws/pty",
		&websocket.DialOptions{Subprotocols: []string{winghub.BrowserSubprotocol, "warren.token.bogus"}})
	if err == nil {
		t.Fatal("a bad subprotocol token was accepted")
	}
}
