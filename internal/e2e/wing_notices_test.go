package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// openerScript is a $BROWSER for the user's side: it records the URL it
// was asked to open in a file.
func openerScript(t *testing.T) (script, record string) {
	t.Helper()
	dir := t.TempDir()
	record = filepath.Join(dir, "opened")
	script = filepath.Join(dir, "browser")
	body := "#!/bin/sh\nprintf '%s\\n' \"$1\" >> " + record + "\n"
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, record
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// sessionsJSON is `wing sessions -o json`'s sessions.
type sessionsJSON struct {
	Sessions []struct {
		SessionID      string `json:"session_id"`
		NeedsAttention bool   `json:"needs_attention"`
		Preview        *struct {
			Mode    string `json:"mode"`
			URL     string `json:"url"`
			Content string `json:"content"`
		} `json:"preview"`
	} `json:"sessions"`
}

func (e *wingEnv) sessions(t *testing.T, wingID string) sessionsJSON {
	t.Helper()
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "sessions", "--relay", e.url, "-o", "json", wingID)
	r.wantCode(t, 0, "wing sessions")
	var s sessionsJSON
	decodeJSON(t, r.stdout, &s)
	return s
}

// waitSessions polls wing sessions until ok says yes.
func (e *wingEnv) waitSessions(t *testing.T, wingID, what string, ok func(sessionsJSON) bool) sessionsJSON {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		s := e.sessions(t, wingID)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("wing sessions: %s not within 30s: %+v", what, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestWingAttachBrowserOpenAndAttention: inside a session on wing serve,
// $BROWSER (which the wing points at `wing open`) asks to open a URL; wing
// attach, on a real PTY, prints it and opens it with the user's own
// $BROWSER only after the user answers y (and not after n). `wing preview`
// shows in attach and in `wing sessions`. Two bells flag the session
// (needs_attention); the relay tells attach, and the next key the user
// types acknowledges it (pty.attention_ack), which clears the flag.
func TestWingAttachBrowserOpenAndAttention(t *testing.T) {
	e := startWingRelay(t)
	e.startWing(t, e.url, "nb1")
	browser, record := openerScript(t)
	tm := startInPTY(t, append(e.userEnv(t), "BROWSER="+browser), 30, 200, "wing", "attach", "--relay", e.url, "nb1")
	tm.wait(t, 0, regexp.MustCompile(`session ([0-9a-f]{8}) on nb1`), 30*time.Second)
	at := tm.typeLine(t, "echo ready-$((20+1))")
	tm.wait(t, at, regexp.MustCompile(`ready-21`), 20*time.Second)

	// Yes: opened, with the user's $BROWSER.
	at = tm.typeLine(t, `"$BROWSER" 'https://example.com/callback?code=42'`)
	tm.wait(t, at, regexp.MustCompile(`asks to open https://example\.com/callback\?code=42 .*\[y/N\]`), 20*time.Second)
	time.Sleep(300 * time.Millisecond)
	if got := readFile(t, record); got != "" {
		t.Fatalf("opened before the user answered: %q", got)
	}
	at = tm.len()
	tm.ptmx.Write([]byte("y"))
	tm.wait(t, at, regexp.MustCompile(`opened https://example\.com/callback\?code=42`), 20*time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for readFile(t, record) != "https://example.com/callback?code=42\n" {
		if time.Now().After(deadline) {
			t.Fatalf("the user's browser got %q", readFile(t, record))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// No: not opened. A non-http URL is refused in the session already.
	at = tm.typeLine(t, `"$BROWSER" https://example.com/other`)
	tm.wait(t, at, regexp.MustCompile(`asks to open https://example\.com/other .*\[y/N\]`), 20*time.Second)
	at = tm.len()
	tm.ptmx.Write([]byte("n"))
	tm.wait(t, at, regexp.MustCompile(`not opened`), 20*time.Second)
	wingBin := filepath.Join(binDir, "wing")
	at = tm.typeLine(t, wingBin+" open file:///etc/passwd; echo rc=$?")
	tm.wait(t, at, regexp.MustCompile(`refused URL[\s\S]*rc=2`), 20*time.Second)
	if got := readFile(t, record); got != "https://example.com/callback?code=42\n" {
		t.Fatalf("the user's browser got %q", got)
	}

	// Preview.
	at = tm.typeLine(t, wingBin+" preview --url https://example.com/report")
	tm.wait(t, at, regexp.MustCompile(`\[wing: preview: https://example\.com/report\]`), 20*time.Second)
	s := e.waitSessions(t, "nb1", "the preview", func(s sessionsJSON) bool {
		return len(s.Sessions) == 1 && s.Sessions[0].Preview != nil && s.Sessions[0].Preview.URL == "https://example.com/report"
	})
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "sessions", "--relay", e.url, "nb1")
	if !regexp.MustCompile(`PREVIEW[\s\S]*https://example\.com/report`).MatchString(r.stdout) {
		t.Fatalf("wing sessions table: %s", r.stdout)
	}

	// Attention: flagged, then acknowledged by the next key.
	tm.typeLine(t, `printf 'one\a'; sleep 0.3; printf 'two\a'; sleep 0.3; echo`)
	e.waitSessions(t, "nb1", "needs_attention", func(s sessionsJSON) bool { return len(s.Sessions) == 1 && s.Sessions[0].NeedsAttention })
	time.Sleep(500 * time.Millisecond) // the notice reaches attach
	at = tm.typeLine(t, "echo seen-$((3*3))")
	tm.wait(t, at, regexp.MustCompile(`seen-9`), 20*time.Second)
	e.waitSessions(t, "nb1", "attention acknowledged", func(s sessionsJSON) bool { return len(s.Sessions) == 1 && !s.Sessions[0].NeedsAttention })
	_ = s
	tm.typeLine(t, "exit 0")
	if code := tm.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("attach exit %d", code)
	}
}

// TestWingStateSurvivesRestarts: allow-list edits made with `wing allow`
// are kept by the wing (serve.state_dir, 0600) across a restart of the
// wing and of the relay; per-user bandwidth usage is kept by the relay in
// its store, so a monthly cap counts what was used before a restart.
func TestWingStateSurvivesRestarts(t *testing.T) {
	e := &wingEnv{admin: "wadm_test_state", port: freePort(t), dataDir: t.TempDir()}
	// 1 MiB a month: one run of the command below fits, two do not.
	relayEnv := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin, "WARREN_RELAY_SERVER_WINGS_BANDWIDTH_MONTHLY_CAP=1MiB")
	startRelay := func() {
		e.relay = start(t, t.TempDir(), relayEnv, "relay-server", "--listen", fmt.Sprintf("127.0.0.1:%d", e.port),
			"--log-format", "json", "--data-dir", e.dataDir)
		e.url = e.relay.stderr.wait(t, listeningRE, 30*time.Second)[1]
	}
	stopRelay := func() {
		e.relay.cmd.Process.Signal(syscall.SIGTERM)
		if code := e.relay.exitCode(t, 30*time.Second); code != 0 {
			t.Fatalf("relay stop: exit %d", code)
		}
	}
	startRelay()
	adm := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	r := run(t, t.TempDir(), adm, "relay-server", "wings", "token", "--server", e.url, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "mint wing token")
	e.wingTok = strings.TrimSpace(r.stdout)
	e.userTok = e.mintUser(t, "alice")

	stateDir := filepath.Join(t.TempDir(), "state")
	keyFile := filepath.Join(t.TempDir(), "id.key")
	wingEnv := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.wingTok, "SHELL=/bin/sh")
	startWing := func() *daemon {
		d := start(t, t.TempDir(), wingEnv, "wing", "serve", "--relay", e.url, "--wing-id", "st1", "--locked",
			"--identity-key", keyFile, "--state-dir", stateDir)
		d.stderr.wait(t, registeredRE, 30*time.Second)
		return d
	}
	wingd := startWing()

	r = run(t, t.TempDir(), e.userEnv(t), "wing", "allow", "add", "--relay", e.url, "--wing", "st1", "carol")
	r.wantCode(t, 0, "wing allow add")
	st, err := os.Stat(filepath.Join(stateDir, "allow-edits.json"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", st, err)
	}
	allowList := func() string {
		t.Helper()
		r := run(t, t.TempDir(), e.userEnv(t), "wing", "allow", "ls", "--relay", e.url, "--wing", "st1", "-o", "json")
		r.wantCode(t, 0, "wing allow ls")
		return r.stdout
	}
	if !strings.Contains(allowList(), `"carol"`) {
		t.Fatal("carol not on the list")
	}

	// Use some bandwidth: about 0.8 MiB of frames. On the relay path: the
	// cap counts what crosses the relay, and a direct session's output
	// does not.
	burn := "head -c 600000 /dev/zero | tr '\\0' x; echo; echo BURNED"
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--direct", "off", "--command", burn, "st1")
	if r.code != 0 || !strings.Contains(r.stdout, "BURNED") {
		t.Fatalf("first run: exit %d, stderr %q", r.code, r.stderr)
	}

	// Restart the wing: the edit is still there.
	wingd.cmd.Process.Signal(syscall.SIGTERM)
	wingd.exitCode(t, 30*time.Second)
	wingd = startWing()
	if !strings.Contains(allowList(), `"carol"`) {
		t.Fatalf("carol lost across a wing restart: %s", allowList())
	}

	// Restart the relay: the wing re-registers with its list; the relay
	// keeps the usage.
	stopRelay()
	startRelay()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(wingd.stderr.String(), "registered with the relay") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("wing did not re-register:\n%s", wingd.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(allowList(), `"carol"`) {
		t.Fatalf("carol lost across a relay restart: %s", allowList())
	}
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "ls", "--relay", e.url, "-o", "json")
	if !strings.Contains(r.stdout, `"allowed_count": 1`) && !strings.Contains(r.stdout, `"allowed_count":1`) {
		t.Fatalf("the relay does not know the allow list's length: %s", r.stdout)
	}
	// Without the stored usage this run would fit in the month's cap.
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--direct", "off", "--command", burn+"; sleep 30", "st1")
	if r.code != 1 || !strings.Contains(r.stderr, "Monthly bandwidth limit exceeded") {
		t.Fatalf("second run after a relay restart: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestWebTerminalNotices: in headless Chromium, the browser terminal offers
// a URL the session asks to open as a button (never opening it by
// itself), shows `wing preview --markdown` beside the terminal and in the
// session list, and on attention raises a Notification (permission granted
// through DevTools) and a visible banner whose OK sends pty.attention_ack.
func TestWebTerminalNotices(t *testing.T) {
	bin := needChromium(t)
	e := startWingRelay(t)
	e.startWing(t, e.url, "web2")
	c := dialCDP(t, pageTarget(t, startChromium(t, bin)))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "Runtime.enable", nil, nil)
	c.call(t, "Browser.grantPermissions", map[string]any{"origin": e.url, "permissions": []string{"notifications"}}, nil)
	c.call(t, "Page.navigate", map[string]any{"url": e.url + "/app/#token=" + e.userTok}, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="web2"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	c.eval(t, `document.querySelector('.wing[data-wing="web2"] .new-session').click()`, nil)
	sid := c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "pty.started")
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.eval(t, `warrenTerm.focus()`, nil)

	// browser_open: a button, not a navigation.
	c.typeLine(t, `"$BROWSER" 'https://example.com/web?x=1'`)
	c.waitJS(t, `document.querySelector('.notice.browser-open .open-url') ? "yes" : ""`, 30*time.Second, "the open button")
	var opened string
	c.eval(t, `window.warrenOpened || ""`, &opened)
	if opened != "" {
		t.Fatalf("opened without a click: %q", opened)
	}
	c.eval(t, `document.querySelector('.notice.browser-open .open-url').click()`, nil)
	c.eval(t, `window.warrenOpened || ""`, &opened)
	if opened != "https://example.com/web?x=1" {
		t.Fatalf("opened %q", opened)
	}

	// Preview: markdown as text beside the terminal.
	wingBin := filepath.Join(binDir, "wing")
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "printf '# Build report\\n<b>ok</b>\\n' | "+wingBin+" preview --markdown -")
	c.waitJS(t, `(document.querySelector('#preview pre') || {}).textContent || ""`, 30*time.Second, "the preview")
	var html string
	c.eval(t, `document.querySelector('#preview pre').innerHTML`, &html)
	if !strings.Contains(html, "&lt;b&gt;ok&lt;/b&gt;") {
		t.Fatalf("markdown preview rendered as HTML: %q", html)
	}

	// Attention: a Notification and a banner; OK acknowledges it.
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, `printf 'one\a'; sleep 0.3; printf 'two\a'`)
	c.waitJS(t, `document.querySelector('.notice.attention .ack') ? "yes" : ""`, 30*time.Second, "the attention banner")
	var notified bool
	c.eval(t, `window.warrenNotified === true`, &notified)
	if !notified {
		t.Error("no browser Notification with the permission granted")
	}
	e.waitSessions(t, "web2", "needs_attention", func(s sessionsJSON) bool { return len(s.Sessions) == 1 && s.Sessions[0].NeedsAttention })
	c.eval(t, `document.querySelector('.notice.attention .ack').click()`, nil)
	e.waitSessions(t, "web2", "attention acknowledged", func(s sessionsJSON) bool { return len(s.Sessions) == 1 && !s.Sessions[0].NeedsAttention })

	// The session list shows the preview.
	c.eval(t, `document.getElementById("detach").click()`, nil)
	sel := fmt.Sprintf(`document.querySelector('.attach[data-session="%s"]')`, sid)
	c.waitJS(t, sel+` ? (`+sel+`.parentElement.querySelector('.preview') || {}).textContent || "" : ""`, 30*time.Second, "the preview in the session list")
	var pv string
	c.eval(t, sel+`.parentElement.querySelector('.preview').textContent`, &pv)
	if !strings.Contains(pv, "# Build report") {
		t.Fatalf("session list preview %q", pv)
	}
}
