package turncontrol

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
	"github.com/warrenhq/warren/internal/turn/turnprovider/vkfake"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// A vk profile through the fake VK: the captcha its second stage asks
// for surfaces as a challenge (event and resource); a person (here: the
// test reading the challenge page) continues it and the session comes
// up; a second session's challenge is canceled and fails it at
// provider_resolve.
func TestVKChallengeThroughTheAPI(t *testing.T) {
	const restSecret = "vk-lab-secret"
	const token = "control-plane-call-token"
	lab := startLabCfg(t, turnlab.Config{RESTSecret: restSecret, DisableStaticUser: true})
	f, err := vkfake.New(vkfake.Config{TURNAddr: lab.TURNUDP, RESTSecret: restSecret, Captchas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer turnprovider.SetVKBaseURLForTest(f.URL())()
	key := make([]byte, 32)
	rand.Read(key)
	keyB64 := base64.StdEncoding.EncodeToString(key)
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": key}})
	h := startController(t, testPrepare)
	pskFile := writeSecret(t, t.TempDir(), "psk", keyB64)
	link := "https://vk.com/call/join/" + token
	events := h.follow(0)

	for _, name := range []string{"vk-a", "vk-b"} {
		var got Profile
		if code := h.do("POST", "/v1/profiles", Profile{Name: name, Provider: "vk", Link: link, Peer: peer, PSKFile: pskFile}, &got); code != 201 {
			t.Fatalf("create: %d", code)
		}
		if strings.Contains(got.Link, token) {
			t.Errorf("profile shows the call token: %+v", got)
		}
	}
	if code := h.do("POST", "/v1/sessions", StartRequest{Profile: "vk-a"}, nil); code != 201 {
		t.Fatalf("start: %d", code)
	}
	ev := events.wait(t, "challenge", func(ev Event) bool { return ev.Kind == EventChallenge && ev.Profile == "vk-a" })
	ch := ev.Challenge
	if ch == nil || ch.Provider != "vk" || ch.Kind != "captcha" || ch.Stage != turnprovider.VKStageToken || ch.URL == "" {
		t.Fatalf("challenge: %+v", ev)
	}
	v := h.waitSession("vk-a", "waiting on the challenge", func(v SessionView) bool { return len(v.Challenges) == 1 })
	if v.State != StateStarting || v.Stage != overlay.StageProviderResolve || v.Challenges[0] != ch.ID {
		t.Errorf("session waiting: %+v", v)
	}
	var cv ChallengeView
	if code := h.do("GET", "/v1/challenges/"+ch.ID, nil, &cv); code != 200 || cv.URL != ch.URL {
		t.Fatalf("challenge resource: %d %+v", code, cv)
	}
	// The person opens the page and reads the captcha.
	resp, err := http.Get(cv.URL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if code := h.do("POST", "/v1/challenges/"+ch.ID+"/continue", turnprovider.ChallengeAnswer{Key: vkfake.CaptchaAnswerFromPage(string(page))}, nil); code != 204 {
		t.Fatalf("continue: %d", code)
	}
	v = h.waitSession("vk-a", "ready", func(v SessionView) bool { return v.State == StateReady || v.State == StateFailed })
	if v.State != StateReady {
		t.Fatalf("after continue: %+v", v)
	}
	events.wait(t, "answered", func(ev Event) bool { return ev.Kind == EventChallengeAnswered && ev.Challenge.ID == ch.ID })
	echo(t, dialLocal(t, v.Local), []byte("through-vk"))
	if f.Solved() != 1 || len(f.Rejects()) != 0 {
		t.Errorf("fake: solved %d, rejects %v", f.Solved(), f.Rejects())
	}

	// Cancel: the session fails at provider_resolve, saying so.
	f.SetCaptchas(1)
	h.do("POST", "/v1/sessions", StartRequest{Profile: "vk-b"}, nil)
	ev = events.wait(t, "second challenge", func(ev Event) bool { return ev.Kind == EventChallenge && ev.Profile == "vk-b" })
	if code := h.do("POST", "/v1/challenges/"+ev.Challenge.ID+"/cancel", nil, nil); code != 204 {
		t.Fatalf("cancel: %d", code)
	}
	v = h.waitSession("vk-b", "failed", func(v SessionView) bool { return v.State == StateFailed })
	if v.Stage != overlay.StageProviderResolve || !strings.Contains(v.Error, "canceled") {
		t.Errorf("canceled session: %+v", v)
	}
	events.wait(t, "vk-b failed", func(ev Event) bool { return ev.Kind == EventSessionFailed && ev.Profile == "vk-b" })

	// No call token, key or TURN credential in the bundle.
	_, bundle := h.raw("GET", "/v1/diagnostics")
	for _, secret := range []string{token, keyB64, restSecret} {
		if bytes.Contains(bundle, []byte(secret)) {
			t.Errorf("diagnostics hold %q", secret)
		}
	}
}
