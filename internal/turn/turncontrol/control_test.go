package turncontrol

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnclient"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// Two profiles run as two real sessions at once through the TURN lab to
// a tunnel-server engine, driven over HTTP: lifecycle, workers, counters,
// a worker restart in the event stream, a resumed stream, a diagnostics
// bundle with no secret in it, and profiles that outlive the controller.
func TestTwoSessionsThroughTheAPI(t *testing.T) {
	lab := startLab(t)
	key := make([]byte, 32)
	rand.Read(key)
	keyB64 := base64.StdEncoding.EncodeToString(key)
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": key}})
	h := startController(t, testPrepare)
	pskFile := writeSecret(t, t.TempDir(), "psk", keyB64)
	link := fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNUDP)
	_, tcpPort, _ := strings.Cut(lab.TURNTCP, ":")
	var port int
	fmt.Sscan(tcpPort, &port)

	// No token, a wrong token: 401, nothing else said.
	resp, err := http.Get(h.base + "/v1/profiles")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("no token: %d", resp.StatusCode)
	}

	events := h.follow(0)
	for _, name := range []string{"alpha", "beta"} {
		// alpha's TURN leg is TCP, so the lab can kill it; beta's is UDP.
		p := Profile{Name: name, Provider: "generic-turn", Link: link, Peer: peer, Connections: 2, PSKFile: pskFile, Mode: "udp"}
		if name == "alpha" {
			p.Mode, p.Port = "tcp", port
		}
		var got Profile
		if code := h.do("POST", "/v1/profiles", p, &got); code != 201 {
			t.Fatalf("create %s: %d", name, code)
		}
		if strings.Contains(got.Link, turnlab.Password) || got.PSKFile != pskFile {
			t.Errorf("created profile: %+v", got)
		}
	}
	var list []Profile
	h.do("GET", "/v1/profiles", nil, &list)
	if len(list) != 2 || list[0].Name != "alpha" || list[1].Name != "beta" {
		t.Fatalf("list: %+v", list)
	}
	if st, err := os.Stat(filepath.Join(h.dir, "profiles", "alpha.json")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("stored profile: %v %v", st, err)
	}
	if code := h.do("POST", "/v1/profiles", Profile{Name: "alpha", Provider: "generic-turn", Link: link, Peer: peer, PSKFile: pskFile}, nil); code != 409 {
		t.Errorf("duplicate profile: %d", code)
	}

	for _, name := range []string{"alpha", "beta"} {
		var v SessionView
		if code := h.do("POST", "/v1/sessions", StartRequest{Profile: name}, &v); code != 201 || v.Local == "" {
			t.Fatalf("start %s: %d %+v", name, code, v)
		}
	}
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "alpha"}, nil); code != 409 {
		t.Errorf("second start: %d", code)
	}
	ready := func(v SessionView) bool { return v.State == StateReady }
	a := h.waitSession("alpha", "ready", ready)
	b := h.waitSession("beta", "ready", ready)
	for _, v := range []SessionView{a, b} {
		if len(v.Workers) != 2 || v.Stage != overlay.StageForwardingLoop || v.SessionID == "" {
			t.Errorf("ready session: %+v", v)
		}
		for _, w := range v.Workers {
			if w.State != turnclient.WorkerReady || w.Relay == "" {
				t.Errorf("%s worker: %+v", v.Profile, w)
			}
		}
	}
	ca, cb := dialLocal(t, a.Local), dialLocal(t, b.Local)
	echo(t, ca, []byte("through-alpha"))
	echo(t, cb, []byte("through-beta"))
	// Both directions are counted after the datagram is sent, so the echo
	// can come back before the outgoing count is in: wait for both.
	b = h.waitSession("beta", "counting", func(v SessionView) bool {
		return v.Counters.ForwardedPackets["relay_to_local"] > 0 &&
			v.Counters.ForwardedBytes["local_to_relay"] >= uint64(len("through-beta"))
	})
	if b.Counters.ActiveWorkers != 2 {
		t.Errorf("beta counters: %+v", b.Counters)
	}
	for _, name := range []string{"alpha", "beta"} {
		for w := range 2 {
			events.wait(t, fmt.Sprintf("%s worker %d ready", name, w), func(ev Event) bool {
				return ev.Profile == name && ev.Kind == turnclient.EventWorkerReady && ev.Worker != nil && *ev.Worker == w
			})
		}
		events.wait(t, name+" session_ready", func(ev Event) bool { return ev.Profile == name && ev.Kind == EventSessionReady })
		events.wait(t, name+" dtls stage", func(ev Event) bool {
			return ev.Profile == name && ev.Kind == turnclient.EventWorkerStage && ev.Stage == overlay.StageDTLSHandshake
		})
	}

	// Killing alpha's TURN connections restarts its workers; beta runs on.
	lab.KillTCP()
	restart := events.wait(t, "worker restart", func(ev Event) bool { return ev.Kind == turnclient.EventWorkerRestart })
	if restart.Profile != "alpha" || restart.Error == "" || restart.DelayMS <= 0 {
		t.Errorf("restart event: %+v", restart)
	}
	h.waitSession("alpha", "restarted", func(v SessionView) bool {
		return v.Workers[0].Restarts+v.Workers[1].Restarts > 0 && v.Counters.TransportFailures[overlay.StageForwardingLoop] > 0
	})
	echo(t, ca, []byte("alpha-after-restart"))
	echo(t, cb, []byte("beta-still-up"))

	// A resumed stream starts right after the cursor.
	cursor := restart.Seq
	code, body := h.raw("GET", fmt.Sprintf("/v1/events?after=%d&follow=false", cursor))
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	var first Event
	json.Unmarshal([]byte(lines[0]), &first)
	if code != 200 || first.Seq != cursor+1 {
		t.Errorf("resume after %d: %d, first %+v", cursor, code, first)
	}

	// Diagnostics: both sessions with metrics and the history, no secret.
	code, bundle := h.raw("GET", "/v1/diagnostics")
	if code != 200 {
		t.Fatalf("diagnostics: %d %s", code, bundle)
	}
	for _, secret := range []string{keyB64, turnlab.Password, link} {
		if bytes.Contains(bundle, []byte(secret)) {
			t.Errorf("diagnostics hold a secret %q", secret)
		}
	}
	var bd Bundle
	if err := json.Unmarshal(bundle, &bd); err != nil {
		t.Fatal(err)
	}
	if len(bd.Sessions) != 2 || !strings.Contains(bd.Sessions[0].Metrics, "warren_runtime_forwarded_bytes_total") ||
		len(bd.Events) == 0 || len(bd.Profiles) != 2 {
		t.Errorf("bundle: %d sessions, %d events, %d profiles", len(bd.Sessions), len(bd.Events), len(bd.Profiles))
	}

	// Stop alpha: beta is untouched; a running profile cannot be deleted.
	var stopped SessionView
	if code := h.do("POST", "/v1/sessions/alpha/stop", nil, &stopped); code != 200 || stopped.State != StateStopped || stopped.Stage != overlay.StageShutdown ||
		stopped.Workers[0].State != turnclient.WorkerStopped || stopped.EndedAt.IsZero() {
		t.Errorf("stop: %d %+v", code, stopped)
	}
	events.wait(t, "alpha stopped", func(ev Event) bool { return ev.Profile == "alpha" && ev.Kind == EventSessionStopped })
	echo(t, cb, []byte("beta-after-alpha-stopped"))
	if code := h.do("DELETE", "/v1/profiles/beta", nil, nil); code != 409 {
		t.Errorf("delete running: %d", code)
	}
	if code := h.do("DELETE", "/v1/profiles/alpha", nil, nil); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if code := h.do("GET", "/v1/sessions/alpha", nil, nil); code != 404 {
		t.Errorf("deleted profile's session: %d", code)
	}

	// A new controller on the same state dir has beta, not alpha.
	c2, err := New(Config{StateDir: h.dir, Token: "x", Prepare: testPrepare}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ps := c2.Profiles(); len(ps) != 1 || ps[0].Name != "beta" || ps[0].Peer != peer {
		t.Errorf("reloaded: %+v", ps)
	}
	c2.Close()
}

func TestProfileChecks(t *testing.T) {
	h := startController(t, testPrepare)
	cases := []struct {
		body string
		want string
	}{
		{`{"name":"Bad Name","provider":"generic-turn","peer":"x:1"}`, "name: "},
		{`{"name":"a","provider":"generic-turn","peer":"x:1","psk":"abc"}`, "set psk_file"},
		{`{"name":"a","provider":"generic-turn","peer":"x:1","rest_secret":"abc"}`, "set rest_secret_file"},
		{`{"name":"a","provider":"generic-turn","peer":"x:1","colour":"red"}`, `unknown field "colour"`},
		{`{"name":"a","provider":"generic-turn"}`, "config turn.peer: not set"},
		{`{"name":"a","provider":"generic-turn","peer":"x:1","link":"l","link_file":"f"}`, "either link or link_file"},
		{`[1]`, "invalid profile"},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest("POST", h.base+"/v1/profiles", strings.NewReader(tc.body))
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := h.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e APIError
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != 400 || e.Code != "invalid" || !strings.Contains(e.Error, tc.want) {
			t.Errorf("%s: %d %+v, want 400 with %q", tc.body, resp.StatusCode, e, tc.want)
		}
	}
	for _, path := range []string{"/v1/profiles/nope", "/v1/sessions/nope", "/v1/challenges/nope"} {
		if code := h.do("GET", path, nil, nil); code != 404 {
			t.Errorf("%s: %d", path, code)
		}
	}
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "nope"}, nil); code != 404 {
		t.Errorf("start unknown: %d", code)
	}
	if code, _ := h.raw("GET", "/v1/events?after=x"); code != 400 {
		t.Errorf("bad cursor: %d", code)
	}
}

// A session whose provider raises a challenge waits in provider_resolve
// with the challenge listed; continue hands the answer to the provider,
// cancel fails it with ErrChallengeCanceled.
func TestChallengeContinueAndCancel(t *testing.T) {
	h := startController(t, testPrepare)
	events := h.follow(0)
	s := newSession(h.c, "vk-profile")
	h.c.mu.Lock()
	h.c.sessions["vk-profile"] = s
	h.c.wg.Add(1)
	h.c.mu.Unlock()
	defer s.end(nil)
	v := &solver{c: h.c, s: s}
	type result struct {
		ans turnprovider.ChallengeAnswer
		err error
	}
	solve := func(id string) chan result {
		out := make(chan result, 1)
		go func() {
			ans, err := v.Solve(s.ctx, turnprovider.Challenge{ID: id, Provider: "vk", Stage: "calls_get_anonymous_token", Kind: "captcha",
				URL: "https://id.vk.com/not_robot_captcha?session_token=abc"})
			out <- result{ans, err}
		}()
		return out
	}

	got := solve("c1")
	ev := events.wait(t, "challenge", func(ev Event) bool { return ev.Kind == EventChallenge })
	if ev.Challenge == nil || ev.Challenge.ID != "c1" || ev.Challenge.Kind != "captcha" || ev.Profile != "vk-profile" {
		t.Fatalf("challenge event: %+v", ev)
	}
	var list []ChallengeView
	h.do("GET", "/v1/challenges", nil, &list)
	if len(list) != 1 || list[0].URL == "" || list[0].Profile != "vk-profile" {
		t.Fatalf("challenges: %+v", list)
	}
	var sv SessionView
	h.do("GET", "/v1/sessions/vk-profile", nil, &sv)
	if len(sv.Challenges) != 1 || sv.Challenges[0] != "c1" {
		t.Errorf("session challenges: %+v", sv.Challenges)
	}
	if code := h.do("POST", "/v1/challenges/c1/continue", map[string]string{"key": ""}, nil); code != 400 {
		t.Errorf("empty answer: %d", code)
	}
	if code := h.do("POST", "/v1/challenges/c1/continue", turnprovider.ChallengeAnswer{Key: "solved-123"}, nil); code != 204 {
		t.Fatalf("continue: %d", code)
	}
	if r := <-got; r.err != nil || r.ans.Key != "solved-123" {
		t.Fatalf("solver got %+v", r)
	}
	events.wait(t, "answered", func(ev Event) bool { return ev.Kind == EventChallengeAnswered && ev.Challenge.ID == "c1" })
	if code := h.do("POST", "/v1/challenges/c1/continue", turnprovider.ChallengeAnswer{Key: "again"}, nil); code != 404 {
		t.Errorf("second continue: %d", code)
	}

	got = solve("c2")
	events.wait(t, "second challenge", func(ev Event) bool { return ev.Kind == EventChallenge && ev.Challenge.ID == "c2" })
	if code := h.do("POST", "/v1/challenges/c2/cancel", nil, nil); code != 204 {
		t.Fatalf("cancel: %d", code)
	}
	if r := <-got; r.err != turnprovider.ErrChallengeCanceled {
		t.Fatalf("canceled solver got %+v", r)
	}
	events.wait(t, "canceled", func(ev Event) bool { return ev.Kind == EventChallengeCanceled && ev.Challenge.ID == "c2" })

	// The bundle does not carry the challenge page's token.
	_, bundle := h.raw("GET", "/v1/diagnostics")
	if bytes.Contains(bundle, []byte("session_token=abc")) {
		t.Error("diagnostics hold the challenge's token")
	}
}

func TestEventRingResume(t *testing.T) {
	r := newRing(3)
	for i := range 5 {
		r.publish(Event{Kind: fmt.Sprint(i)})
	}
	evs, lost, _ := r.since(0)
	if lost != 2 || len(evs) != 3 || evs[0].Seq != 3 {
		t.Errorf("since 0: lost %d, %+v", lost, evs)
	}
	evs, lost, wait := r.since(4)
	if lost != 0 || len(evs) != 1 || evs[0].Seq != 5 {
		t.Errorf("since 4: lost %d, %+v", lost, evs)
	}
	select {
	case <-wait:
		t.Fatal("wait closed before a publish")
	default:
	}
	r.publish(Event{})
	select {
	case <-wait:
	case <-time.After(5 * time.Second):
		t.Fatal("wait not closed by publish")
	}
}

func TestCheckListen(t *testing.T) {
	for addr, ok := range map[string]bool{"127.0.0.1:7777": true, "[::1]:7777": true, "localhost:7777": true, "127.0.0.2:1": true,
		"0.0.0.0:7777": false, ":7777": false, "192.168.1.1:7777": false, "[::]:7777": false, "example.com:7777": false, "127.0.0.1": false} {
		if err := CheckListen(addr); (err == nil) != ok {
			t.Errorf("CheckListen(%q) = %v", addr, err)
		}
	}
}

func FuzzDecodeProfile(f *testing.F) {
	f.Add([]byte(`{"name":"a","provider":"generic-turn","link":"generic-turn://u:p@h:1","peer":"x:1","connections":2}`))
	f.Add([]byte(`{"name":"a","psk":"x"}`))
	f.Add([]byte(`{"name":1}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeProfile(bytes.NewReader(data))
		if err != nil {
			return
		}
		// What decodes re-encodes and decodes to the same profile.
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := DecodeProfile(bytes.NewReader(b))
		if err != nil || p2 != p {
			t.Fatalf("round trip: %+v → %+v, %v", p, p2, err)
		}
	})
}

// A session that cannot start says where: a taken local address is a 409
// at start (local_bind); a TURN server refusing the credentials fails the
// session at turn_allocate, in its state and in a session_failed event,
// without the password.
func TestSessionFailures(t *testing.T) {
	lab := startLab(t)
	h := startController(t, testPrepare)
	events := h.follow(0)
	pskFile := writeSecret(t, t.TempDir(), "psk", base64.StdEncoding.EncodeToString(make([]byte, 32)))
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	const wrongPassword = "definitely-wrong-pw"
	for _, p := range []Profile{
		{Name: "taken", Provider: "generic-turn", Link: fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNUDP),
			Peer: "127.0.0.1:9", PSKFile: pskFile, Listen: taken.LocalAddr().String()},
		{Name: "refused", Provider: "generic-turn", Link: fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, wrongPassword, lab.TURNUDP),
			Peer: "127.0.0.1:9", PSKFile: pskFile},
	} {
		if code := h.do("POST", "/v1/profiles", p, nil); code != 201 {
			t.Fatalf("create %s: %d", p.Name, code)
		}
	}
	var e APIError
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "taken"}, &e); code != 409 || !strings.Contains(e.Error, "local_bind") {
		t.Errorf("taken address: %d %+v", code, e)
	}
	if v := h.waitSession("taken", "failed", func(v SessionView) bool { return v.State != "" }); v.State != StateFailed || v.Stage != overlay.StageLocalBind {
		t.Errorf("taken session: %+v", v)
	}
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "refused"}, nil); code != 201 {
		t.Fatalf("start refused: %d", code)
	}
	v := h.waitSession("refused", "failed", func(v SessionView) bool { return v.State == StateFailed })
	if v.Stage != overlay.StageTURNAllocate || v.Error == "" || strings.Contains(v.Error, wrongPassword) {
		t.Errorf("refused session: %+v", v)
	}
	ev := events.wait(t, "session_failed", func(ev Event) bool { return ev.Kind == EventSessionFailed && ev.Profile == "refused" })
	if ev.Stage != overlay.StageTURNAllocate || ev.Error == "" {
		t.Errorf("failed event: %+v", ev)
	}
	// Failed sessions can be started again (and fail again).
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "refused"}, nil); code != 201 {
		t.Errorf("restart after failure: %d", code)
	}
	h.waitSession("refused", "failed again", func(v SessionView) bool { return v.State == StateFailed })
	_, bundle := h.raw("GET", "/v1/diagnostics")
	if bytes.Contains(bundle, []byte(wrongPassword)) {
		t.Error("diagnostics hold the password")
	}
}
