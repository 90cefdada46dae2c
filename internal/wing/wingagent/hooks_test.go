package wingagent

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// eventSession runs a session as alice and reports its events.
func eventSession(t *testing.T, url string, cmd string) (*wingclient.Session, *bufWriter, chan wingclient.Event) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := client(url, "alice").Open(ctx, wingclient.SessionOptions{WingID: "box", Command: cmd})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	out := &bufWriter{}
	evs := make(chan wingclient.Event, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx, out, func(ev wingclient.Event) {
			select {
			case evs <- ev:
			default:
			}
		}, 0)
	}()
	t.Cleanup(func() { cancel(); s.Close(); <-done })
	return s, out, evs
}

func waitEvent(t *testing.T, evs chan wingclient.Event, kind string) wingclient.Event {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Kind == kind {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

var hookEnvRE = regexp.MustCompile(`ENV (\S+) (\S+) (\S+) (\S+) END`)

// TestHooks: a program in a session asks, through the hook socket, to open
// a URL and to show previews; the attached user gets pty.browser_open and
// the decrypted pty.preview, sessions.list shows the preview, a wrong
// token or a bad URL is refused. $BROWSER points at "<OpenHelper> open".
func TestHooks(t *testing.T) {
	url, _ := testHub(t, nil)
	startAgent(t, url, func(c *Config) { c.OpenHelper = "/opt/wing's/wing" })
	_, out, evs := eventSession(t, url, `echo "ENV $WARREN_SESSION_SOCKET $WARREN_SESSION_TOKEN $WARREN_SESSION $BROWSER END"; sleep 100`)
	waitEvent(t, evs, "started")
	out.waitFor(t, " END")
	m := hookEnvRE.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("session env: %q", out.String())
	}
	env := map[string]string{EnvHookSocket: m[1], EnvHookToken: m[2], EnvSession: m[3]}
	getenv := func(k string) string { return env[k] }
	st, err := os.Stat(m[1][:strings.LastIndexByte(m[1], '/')])
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("hook dir: %v %v", st.Mode(), err)
	}
	script, err := os.ReadFile(m[4])
	if err != nil || !strings.Contains(string(script), `exec '/opt/wing'\''s/wing' open -- "$@"`) {
		t.Fatalf("$BROWSER script %q: %v", script, err)
	}
	ctx := t.Context()

	if err := SendHook(ctx, getenv, HookRequest{Op: "open", URL: "https://example.com/login?code=1"}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, evs, "browser_open"); ev.URL != "https://example.com/login?code=1" {
		t.Fatalf("browser_open %+v", ev)
	}
	if err := SendHook(ctx, getenv, HookRequest{Op: "preview", Preview: &wp.Preview{Mode: "markdown", Content: "# Report\nall good"}}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, evs, "preview"); ev.Preview.Mode != "markdown" || ev.Preview.Content != "# Report\nall good" {
		t.Fatalf("preview %+v", ev.Preview)
	}
	var list struct {
		Sessions []struct {
			Preview *wp.Preview `json:"preview"`
		} `json:"sessions"`
	}
	mustRequest(t, openTunnel(t, url, "alice"), map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Preview == nil || list.Sessions[0].Preview.Content != "# Report\nall good" {
		t.Fatalf("sessions.list preview: %+v", list)
	}
	// Refusals.
	if err := SendHook(ctx, getenv, HookRequest{Op: "open", URL: "file:///etc/passwd"}); err == nil || !strings.Contains(err.Error(), "refused URL") {
		t.Fatalf("file: URL: %v", err)
	}
	bad := map[string]string{EnvHookSocket: m[1], EnvHookToken: strings.Repeat("0", 64), EnvSession: m[3]}
	if err := SendHook(ctx, func(k string) string { return bad[k] }, HookRequest{Op: "open", URL: "https://x.example/"}); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("wrong token: %v", err)
	}
	if err := SendHook(ctx, func(string) string { return "" }, HookRequest{Op: "open", URL: "https://x.example/"}); err == nil {
		t.Fatal("no env accepted")
	}
	// Clearing.
	if err := SendHook(ctx, getenv, HookRequest{Op: "preview", Preview: &wp.Preview{}}); err != nil {
		t.Fatal(err)
	}
	if ev := waitEvent(t, evs, "preview"); ev.Preview.Mode != "" {
		t.Fatalf("cleared preview %+v", ev.Preview)
	}
	list.Sessions = nil // the next reply omits preview
	mustRequest(t, openTunnel(t, url, "alice"), map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 || list.Sessions[0].Preview != nil {
		t.Fatalf("preview after clear: %+v", list.Sessions[0].Preview)
	}
}

// TestAttentionForwarded: two bells make the wing flag the session; the
// relay forwards session.attention to the attached user, whose
// pty.attention_ack clears the flag.
func TestAttentionForwarded(t *testing.T) {
	url, _ := testHub(t, nil)
	startAgent(t, url, nil)
	s, _, evs := eventSession(t, url, `printf 'a\a'; sleep 0.3; printf 'b\a'; sleep 100`)
	waitEvent(t, evs, "started")
	waitEvent(t, evs, "attention")
	tn := openTunnel(t, url, "alice")
	var list struct {
		Sessions []struct {
			NeedsAttention bool `json:"needs_attention"`
		} `json:"sessions"`
	}
	mustRequest(t, tn, map[string]any{"type": "sessions.list"}, &list)
	if len(list.Sessions) != 1 || !list.Sessions[0].NeedsAttention {
		t.Fatalf("needs_attention not set: %+v", list)
	}
	if err := s.AckAttention(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mustRequest(t, tn, map[string]any{"type": "sessions.list"}, &list)
		if !list.Sessions[0].NeedsAttention {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("pty.attention_ack did not clear needs_attention")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func FuzzParseHookRequest(f *testing.F) {
	f.Add([]byte(`{"session":"s","token":"t","op":"open","url":"https://example.com/"}`))
	f.Add([]byte(`{"session":"s","token":"t","op":"preview","preview":{"mode":"markdown","content":"x"}}`))
	f.Add([]byte(`{"session":"s","token":"t","op":"preview","preview":{"mode":"url","url":"javascript:x"}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseHookRequest(b)
		if err != nil {
			return
		}
		if r.Op == "open" && wp.CheckURL(r.URL) != nil {
			t.Fatalf("accepted URL %q", r.URL)
		}
		if r.Op == "preview" && (r.Preview == nil || r.Preview.Check() != nil) {
			t.Fatalf("accepted preview %+v", r.Preview)
		}
	})
}
