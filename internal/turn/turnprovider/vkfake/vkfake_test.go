package vkfake

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post sends form to the fake and decodes the JSON answer.
func post(t *testing.T, c *http.Client, u string, form url.Values) map[string]any {
	t.Helper()
	resp, err := c.Post(u, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("%s: status %d: %v", u, resp.StatusCode, err)
	}
	return v
}

// TestStagesByHand walks the four stages with a plain HTTP client,
// through one captcha, the way the provider must.
func TestStagesByHand(t *testing.T) {
	f, err := New(Config{TURNAddr: "127.0.0.1:3478", RESTSecret: "s", TTL: time.Minute, JoinToken: "abc", Captchas: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	v := post(t, c, f.URL()+PathLogin+"?act=get_anonym_token", url.Values{"client_id": {ClientID}, "token_type": {"messages"},
		"client_secret": {"x"}, "version": {"1"}, "app_id": {ClientID}})
	access, _ := v["data"].(map[string]any)["access_token"].(string)
	if access == "" {
		t.Fatalf("stage 1: %v", v)
	}
	tokURL := f.URL() + PathToken + "?v=" + APIVersion + "&client_id=" + ClientID
	form := url.Values{"vk_join_link": {"https://vk.com/call/join/abc"}, "name": {"123"}, "access_token": {access}}
	v = post(t, c, tokURL, form)
	e, _ := v["error"].(map[string]any)
	if e == nil || e["error_code"] != float64(14) {
		t.Fatalf("stage 2 wants a captcha: %v", v)
	}
	resp, err := c.Get(e["redirect_uri"].(string))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answer := CaptchaAnswerFromPage(string(page))
	if answer == "" || answer != f.Answer(e["captcha_sid"].(string)) {
		t.Fatalf("captcha page %q", page)
	}
	// A wrong answer gets a fresh captcha.
	form.Set("captcha_sid", e["captcha_sid"].(string))
	form.Set("success_token", "wrong")
	v = post(t, c, tokURL, form)
	e, _ = v["error"].(map[string]any)
	if e == nil || e["error_code"] != float64(14) {
		t.Fatalf("wrong answer: %v", v)
	}
	form.Set("captcha_sid", e["captcha_sid"].(string))
	form.Set("success_token", f.Answer(e["captcha_sid"].(string)))
	v = post(t, c, tokURL, form)
	anonym, _ := v["response"].(map[string]any)["token"].(string)
	if anonym == "" || f.Solved() != 1 {
		t.Fatalf("stage 2 after the captcha: %v", v)
	}
	v = post(t, c, f.URL()+PathOK, url.Values{"method": {"auth.anonymLogin"}, "format": {"JSON"}, "application_key": {ApplicationKey},
		"session_data": {`{"version":2,"device_id":"d","client_version":1.1,"client_type":"SDK_JS"}`}})
	sk, _ := v["session_key"].(string)
	if sk == "" {
		t.Fatalf("stage 3: %v", v)
	}
	join := url.Values{"method": {"vchat.joinConversationByLink"}, "format": {"JSON"}, "application_key": {ApplicationKey},
		"joinLink": {"abc"}, "isVideo": {"false"}, "protocolVersion": {"5"}, "anonymToken": {anonym}, "session_key": {sk}}
	v = post(t, c, f.URL()+PathOK, join)
	ts, _ := v["turn_server"].(map[string]any)
	if ts == nil || !strings.Contains(ts["username"].(string), ":vkfake-1") || ts["urls"].([]any)[0] != "turn:127.0.0.1:3478?transport=udp" {
		t.Fatalf("stage 4: %v", v)
	}
	if r := f.Rejects(); len(r) != 0 {
		t.Fatalf("rejects: %v", r)
	}
	for _, st := range []string{StageLogin, StageOK, StageJoin} {
		if f.Hits(st) != 1 {
			t.Errorf("%s hits %d", st, f.Hits(st))
		}
	}
	// A forged session key is refused and recorded.
	join.Set("session_key", "forged")
	v = post(t, c, f.URL()+PathOK, join)
	if v["error_code"] != float64(102) || len(f.Rejects()) != 1 {
		t.Fatalf("forged session: %v %v", v, f.Rejects())
	}
	if _, err := New(Config{TURNAddr: "x:1", Username: "u", Credential: "p", Fault: "nope"}); err == nil {
		t.Fatal("unknown fault accepted")
	}
}
