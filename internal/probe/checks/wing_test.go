package checks

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/wing/wingagent"
	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// wingHub serves the real hub on loopback; tokens are "wing:<user>" and
// "user:<user>" (token verification is wingtoken's, tested there).
func wingHub(t *testing.T) string {
	t.Helper()
	return hubtest.Start(t, nil)
}

// startWing runs a real wing agent for alice until the test ends (or the
// returned stop is called) and waits until it is connected.
func startWing(t *testing.T, url, id string, allowCommands bool) (stop func()) {
	t.Helper()
	key, err := wingagent.LoadOrCreateIdentity(t.TempDir() + "/id.key")
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	a, err := wingagent.New(wingagent.Config{RelayURL: url, Token: "wing:alice", WingID: id, Key: key, Shell: "/bin/sh",
		AllowCommands: allowCommands, Env: []string{"PS1=$ "},
		OnState: func(s wingagent.State) {
			if s == wingagent.StateConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var stopped bool
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("wing did not connect")
	}
	// registered is sent before the wing is listed; wait for the listing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		ws, err := listWings(ctx, http.DefaultClient, url, "user:alice")
		cancel()
		if err == nil && len(pickable(ws, id)) > 0 {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("wing %s not listed: %v %v", id, ws, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pickable(ws []wp.WingInfo, id string) []wp.WingInfo {
	var out []wp.WingInfo
	for _, w := range ws {
		if w.WingID == id {
			out = append(out, w)
		}
	}
	return out
}

func verdict(res probe.Result) (probe.Status, string) {
	st := res.Status
	if res.Err != nil && st == probe.OK {
		st = probe.Critical
	}
	text := res.Message
	if res.Err != nil {
		text += " " + res.Err.Error()
	}
	return st, text
}

func TestWingChecks(t *testing.T) {
	reg := registry(t)
	url := wingHub(t)
	down := closedURL(t)
	startWing(t, url, "box", true)
	startWing(t, url, "nocmd", false)

	cases := []struct {
		name, doc string
		status    probe.Status
		stage     string
		msg       string
	}{
		{"presence", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:alice', wing: box}", probe.OK, "", "wing box ("},
		{"presence any", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:alice'}", probe.OK, "", "2 wings connected: box, nocmd"},
		{"presence min", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:alice', min_wings: 3}", probe.Critical, "presence", "2 wings of this user are connected (box, nocmd), at least 3 expected"},
		{"presence other user", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:bob'}", probe.Critical, "presence", "no wing of this user is connected"},
		{"presence min 0", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:bob', min_wings: 0}", probe.OK, "", "0 wings connected"},
		{"presence missing", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'user:alice', wing: gone}", probe.Critical, "presence", "wing gone is not connected to the relay (connected: box, nocmd)"},
		{"presence 401", "{name: a, kind: wing_presence, url: '" + url + "', user_token: 'wing:alice', wing: box}", probe.Critical, "list", "HTTP 401"},
		{"presence down", "{name: a, kind: wing_presence, url: '" + down + "', user_token: 'user:alice'}", probe.Critical, "connect", "connection refused"},
		{"session", "{name: a, kind: wing_session, url: '" + url + "', user_token: 'user:alice', wing: box}", probe.OK, "", "nonce returned decrypted, exit code 0"},
		{"session ambiguous", "{name: a, kind: wing_session, url: '" + url + "', user_token: 'user:alice'}", probe.Critical, "lookup", "2 wings are connected (box, nocmd); name one"},
		{"session no commands", "{name: a, kind: wing_session, url: '" + url + "', user_token: 'user:alice', wing: nocmd}", probe.Critical, "start", "wing nocmd refused the session: this wing does not run commands"},
		{"session missing", "{name: a, kind: wing_session, url: '" + url + "', user_token: 'user:alice', wing: gone}", probe.Critical, "lookup", "wing gone is not connected"},
		{"session 401", "{name: a, kind: wing_session, url: '" + url + "', user_token: 'nope', wing: box}", probe.Critical, "lookup", "HTTP 401"},
		{"session down", "{name: a, kind: wing_session, url: '" + down + "', user_token: 'user:alice', wing: box}", probe.Critical, "connect", "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			chk, err := build(t, reg, redact.NewRedactor(), "  - "+c.doc)
			if err != nil {
				t.Fatal(err)
			}
			res := runCheck(t, chk)
			st, text := verdict(res)
			if st != c.status || res.Stage != c.stage || !strings.Contains(text, c.msg) {
				t.Fatalf("got %s stage %q %q, want %s stage %q containing %q", st, res.Stage, text, c.status, c.stage, c.msg)
			}
			if len(res.Stages) == 0 {
				t.Error("no stages measured")
			}
			if c.name == "session" {
				var names []string
				for _, s := range res.Stages {
					names = append(names, s.Name)
				}
				if strings.Join(names, ",") != "lookup,start,exchange" || res.Details["wing"] != "box" || res.Details["session"] == "" {
					t.Errorf("stages %v details %v", names, res.Details)
				}
			}
		})
	}
}

// A wing that goes away between the listing and the session start, and a
// session that outlives the check's timeout.
func TestWingSessionFailures(t *testing.T) {
	reg := registry(t)
	url := wingHub(t)
	stop := startWing(t, url, "box", true)
	chk, err := build(t, reg, redact.NewRedactor(), "  - {name: a, kind: wing_session, url: '"+url+"', user_token: 'user:alice', wing: box}")
	if err != nil {
		t.Fatal(err)
	}
	if st, text := verdict(runCheck(t, chk)); st != probe.OK {
		t.Fatalf("first run: %s %s", st, text)
	}
	stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := runCheck(t, chk)
		st, text := verdict(res)
		if st == probe.Critical && strings.Contains(text, "wing box is not connected") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the wing stopped: %s stage %q %q", st, res.Stage, text)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A wing that registers but never answers pty.start: the check ends at its
// timeout in stage start and says so.
func TestWingSessionTimeout(t *testing.T) {
	reg := registry(t)
	url := wingHub(t)
	key, err := wp.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http")+"/ws/wing?token=wing:alice", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	reg1, _ := wp.Encode(wp.Register{Type: wp.TypeWingRegister, WingID: "mute", PublicKey: wp.PublicKeyString(key)})
	if err := ws.Write(ctx, websocket.MessageText, reg1); err != nil {
		t.Fatal(err)
	}
	go func() { // read (and ignore) what the relay sends
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
		}
	}()
	for {
		ws, err := listWings(ctx, http.DefaultClient, url, "user:alice")
		if err == nil && len(ws) == 1 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mute wing not listed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	chk, err := build(t, reg, redact.NewRedactor(), "  - {name: a, kind: wing_session, url: '"+url+"', user_token: 'user:alice'}")
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer rcancel()
	res := chk.Run(rctx)
	st, text := verdict(res)
	if st != probe.Critical || res.Stage != "start" || !strings.Contains(text, "no pty.started from wing mute") {
		t.Fatalf("got %s stage %q %q", st, res.Stage, text)
	}
}

func TestWingParamErrors(t *testing.T) {
	reg := registry(t)
	cases := []struct{ doc, want string }{
		{"  - {name: a, kind: wing_presence, user_token: t}", `key "url": missing`},
		{"  - {name: a, kind: wing_presence, url: 'http://x'}", `key "user_token": missing`},
		{"  - {name: a, kind: wing_presence, url: 'http://x', user_token: t, min_wings: -1}", `key "min_wings"`},
		{"  - {name: a, kind: wing_presence, url: 'http://x', user_token: t, wings: box}", `did you mean "wing"`},
		{"  - {name: a, kind: wing_session, url: 'ws://x', user_token: t}", `key "url": expected an http:// or https:// URL`},
		{"  - {name: a, kind: wing_session, url: 'http://x', user_token_env: NOPE_NOT_SET}", `key "user_token_env"`},
	}
	for _, c := range cases {
		_, err := build(t, reg, redact.NewRedactor(), c.doc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
}

func TestPickWing(t *testing.T) {
	ws := []wp.WingInfo{{WingID: "b"}, {WingID: "a", Hostname: "h", Platform: "linux"}}
	if w, err := pickWing(ws, "a", true); err != nil || describeWing(w) != "a (h, linux)" {
		t.Errorf("a: %v %v", w, err)
	}
	if _, err := pickWing(ws, "", true); err == nil || !strings.Contains(err.Error(), "2 wings are connected (a, b)") {
		t.Errorf("ambiguous: %v", err)
	}
	if w, err := pickWing(ws, "", false); err != nil || w.WingID != "b" {
		t.Errorf("any: %v %v", w, err)
	}
	if _, err := pickWing(nil, "x", false); err == nil || !strings.Contains(err.Error(), "no wing of this user is") {
		t.Errorf("none: %v", err)
	}
	var b boundedBuffer
	b.Write(make([]byte, maxSessionOutput-1))
	b.Write([]byte("xyz"))
	if len(b.String()) != maxSessionOutput {
		t.Errorf("bounded buffer holds %d", len(b.String()))
	}
}
