package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/needtool"
)

// cdp is a minimal Chrome DevTools Protocol client: calls by id over one
// page's WebSocket; events are ignored.
type cdp struct {
	ws      *websocket.Conn
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpReply
}

type cdpReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func dialCDP(t *testing.T, url string) *cdp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		t.Fatalf("dial devtools: %v", err)
	}
	ws.SetReadLimit(64 << 20) // screenshots
	c := &cdp{ws: ws, pending: map[int]chan cdpReply{}}
	go func() {
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m struct {
				ID int `json:"id"`
				cdpReply
			}
			if json.Unmarshal(b, &m) != nil || m.ID == 0 {
				continue
			}
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m.cdpReply
			}
		}
	}()
	t.Cleanup(func() { ws.CloseNow() })
	return c
}

func (c *cdp) call(t *testing.T, method string, params any, out any) {
	t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpReply, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			t.Fatalf("%s: %s", method, r.Error.Message)
		}
		if out != nil {
			json.Unmarshal(r.Result, out)
		}
	case <-ctx.Done():
		t.Fatalf("%s: no reply", method)
	}
}

// eval evaluates a JavaScript expression in the page (awaiting promises)
// and decodes its value into out.
func (c *cdp) eval(t *testing.T, expr string, out any) {
	t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	c.call(t, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &r)
	if r.ExceptionDetails != nil {
		t.Fatalf("eval %q: %s %s", expr, r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out != nil && len(r.Result.Value) > 0 {
		json.Unmarshal(r.Result.Value, out)
	}
}

// waitJS polls a JavaScript expression until it returns a non-empty
// string, and returns it.
func (c *cdp) waitJS(t *testing.T, expr string, timeout time.Duration, what string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var s string
		c.eval(t, expr, &s)
		if s != "" {
			return s
		}
		if time.Now().After(deadline) {
			var st, buf string
			c.eval(t, `document.getElementById("status").textContent`, &st)
			c.eval(t, `window.warrenBufferText ? warrenBufferText() : ""`, &buf)
			t.Fatalf("browser: %s not within %s; status %q; terminal:\n%s", what, timeout, st, strings.TrimRight(buf, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// typeText types into the focused terminal: text as IME input, then Enter
// as a real key press.
func (c *cdp) typeLine(t *testing.T, text string) {
	t.Helper()
	c.call(t, "Input.insertText", map[string]any{"text": text}, nil)
	enter := map[string]any{"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13, "text": "\r"}
	enter["type"] = "keyDown"
	c.call(t, "Input.dispatchKeyEvent", enter, nil)
	enter["type"] = "keyUp"
	delete(enter, "text")
	c.call(t, "Input.dispatchKeyEvent", enter, nil)
}

// needChromium returns a headless-capable Chromium, skipping the test
// without one (failing under WARREN_REQUIRE_TOOLS=1, see needtool).
func needChromium(t *testing.T) string {
	t.Helper()
	return needtool.Any(t, []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"},
		"apt-get install chromium; the browser terminal tests need it")
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startChromium runs headless Chromium and returns its DevTools HTTP base.
func startChromium(t *testing.T, bin string, extra ...string) string {
	t.Helper()
	args := []string{"--headless=new", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
		"--user-data-dir=" + t.TempDir(), "--no-first-run", "--no-default-browser-check", "--disable-gpu",
		"--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage", "--window-size=1100,700"}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // Chromium refuses to run its sandbox as root
	}
	args = append(args, extra...)
	cmd := exec.Command(bin, append(args, "about:blank")...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	se, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	found := make(chan string, 1)
	var tail []string
	var tmu sync.Mutex
	go func() {
		sc := bufio.NewScanner(se)
		for sc.Scan() {
			tmu.Lock()
			tail = append(tail, sc.Text())
			tmu.Unlock()
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	select {
	case u := <-found:
		// ws://127.0.0.1:PORT/devtools/browser/ID → http://127.0.0.1:PORT
		return "http://" + strings.SplitN(strings.TrimPrefix(u, "ws://"), "/", 2)[0]
	case <-done:
	case <-time.After(30 * time.Second):
	}
	tmu.Lock()
	defer tmu.Unlock()
	t.Fatalf("chromium did not start its DevTools server; stderr:\n%s", strings.Join(tail, "\n"))
	return ""
}

func pageTarget(t *testing.T, base string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/json/list")
		if err == nil {
			var targets []struct {
				Type string `json:"type"`
				URL  string `json:"webSocketDebuggerUrl"`
			}
			json.NewDecoder(resp.Body).Decode(&targets)
			resp.Body.Close()
			for _, tg := range targets {
				if tg.Type == "page" && tg.URL != "" {
					return tg.URL
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no page target at %s: %v", base, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func artifactDir(t *testing.T) string {
	if d := os.Getenv("WARREN_TEST_ARTIFACTS"); d != "" {
		os.MkdirAll(d, 0o755)
		return d
	}
	return t.TempDir()
}

// TestWebTerminalInChromium opens relay-server's /app/ in headless
// Chromium, starts a shell on a real wing from the page, types a command
// into xterm.js and reads its output back from the terminal buffer; then
// reloads the page and reattaches the session, whose replay shows the
// same output. The page does all E2E crypto with WebCrypto.
func TestWebTerminalInChromium(t *testing.T) {
	bin := needChromium(t)
	e := startWingRelay(t)
	e.startWing(t, e.url, "web1")

	// The page itself is served with its assets and a strict CSP.
	resp, err := http.Get(e.url + "/app/xterm.js")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /app/xterm.js: %v %v", err, resp)
	}
	resp.Body.Close()

	c := dialCDP(t, pageTarget(t, startChromium(t, bin)))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "Runtime.enable", nil, nil)
	c.call(t, "Page.navigate", map[string]any{"url": e.url + "/app/#token=" + e.userTok}, nil)

	c.waitJS(t, `document.querySelector('.wing[data-wing="web1"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	var href string
	c.eval(t, `location.href`, &href)
	if strings.Contains(href, "token") {
		t.Fatalf("the token stayed in the address bar: %s", href)
	}
	c.eval(t, `document.querySelector('.wing[data-wing="web1"] .new-session').click()`, nil)
	sid := c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "pty.started")
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "echo web-$((6*7))")
	c.waitJS(t, `/web-42/.test(warrenBufferText()) ? "yes" : ""`, 30*time.Second, "the command's output")

	var shot struct {
		Data string `json:"data"`
	}
	c.call(t, "Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) == 0 {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(artifactDir(t), "webterm.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the browser terminal: %s", path)

	// Reload: the token is still in this tab's sessionStorage; the wing
	// list shows the running session (sessions.list over an encrypted
	// tunnel from the page); attaching replays its screen.
	c.call(t, "Page.reload", map[string]any{}, nil)
	sel := fmt.Sprintf(`document.querySelector('.attach[data-session="%s"]')`, sid)
	c.waitJS(t, sel+` ? "yes" : ""`, 30*time.Second, "the session in the wing list")
	c.eval(t, sel+`.click()`, nil)
	c.waitJS(t, `/web-42/.test(warrenBufferText()) ? "yes" : ""`, 30*time.Second, "the replay after reattach")
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "echo again-$((2*2))")
	c.waitJS(t, `/again-4/.test(warrenBufferText()) ? "yes" : ""`, 30*time.Second, "output after reattach")
}

// TestWebTerminalPasskey: a wing whose config gives the owner a passkey
// sends passkey.challenge; the page answers with navigator.credentials.get
// from Chromium's virtual authenticator (holding a key made here), the
// wing verifies the assertion, and the session starts. The auth token the
// wing returns then opens a second session with the authenticator gone.
func TestWebTerminalPasskey(t *testing.T) {
	bin := needChromium(t)
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := pk.PublicKey.Bytes()
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(pk)
	credID := []byte("warren-test-credential-1")

	e := startWingRelay(t)
	cfgFile := filepath.Join(t.TempDir(), "wing.yaml")
	cfg := fmt.Sprintf("serve:\n  wing_id: web2\n  allow:\n    - user: alice\n      passkey_public_key: %s\n      passkey_credential_id: %s\n",
		base64.StdEncoding.EncodeToString(pub[1:]), base64.RawURLEncoding.EncodeToString(credID))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.startWingConfig(t, cfgFile)

	c := dialCDP(t, pageTarget(t, startChromium(t, bin)))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "WebAuthn.enable", nil, nil)
	var auth struct {
		AuthenticatorID string `json:"authenticatorId"`
	}
	c.call(t, "WebAuthn.addVirtualAuthenticator", map[string]any{"options": map[string]any{"protocol": "ctap2", "transport": "internal",
		"hasResidentKey": true, "hasUserVerification": true, "isUserVerified": true, "automaticPresenceSimulation": true}}, &auth)
	// WebAuthn needs a domain for its RP id, not an IP: use localhost.
	base := strings.Replace(e.url, "127.0.0.1", "localhost", 1)
	c.call(t, "WebAuthn.addCredential", map[string]any{"authenticatorId": auth.AuthenticatorID, "credential": map[string]any{
		"credentialId": base64.StdEncoding.EncodeToString(credID), "isResidentCredential": false, "rpId": "localhost",
		"privateKey": base64.StdEncoding.EncodeToString(pkcs8), "signCount": 0}}, nil)

	c.call(t, "Page.navigate", map[string]any{"url": base + "/app/#token=" + e.userTok}, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="web2"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	c.eval(t, fmt.Sprintf(`sessionStorage.setItem("warren.credential", %q)`, base64.RawURLEncoding.EncodeToString(credID)), nil)
	c.eval(t, `document.querySelector('.wing[data-wing="web2"] .new-session').click()`, nil)
	c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "pty.started after the passkey check")
	c.waitJS(t, `sessionStorage.getItem("warren.auth.web2") || ""`, 10*time.Second, "the auth token")
	// Typed before the first prompt, the output lands after "$ ", not at
	// a line's start; the typed line itself cannot match pk-64.
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "echo pk-$((8*8))")
	c.waitJS(t, `/pk-64/.test(warrenBufferText()) ? "yes" : ""`, 30*time.Second, "output of the passkey-gated session")

	// Without the authenticator, the cached auth token still opens a session.
	c.call(t, "WebAuthn.removeVirtualAuthenticator", map[string]any{"authenticatorId": auth.AuthenticatorID}, nil)
	c.eval(t, `window.warrenSession = ""; document.getElementById("detach").click()`, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="web2"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list again")
	c.eval(t, `document.querySelector('.wing[data-wing="web2"] .new-session').click()`, nil)
	c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "a second session on the auth token")
}

// TestWebTerminalFlowControl: a command in the browser terminal prints
// more than the relay's per-user send queue (8 MiB) on the relay path; the
// page acknowledges what xterm.js has parsed (pty.ack), and every byte is
// drawn on one connection.
func TestWebTerminalFlowControl(t *testing.T) {
	bin := needChromium(t)
	e := startWingRelay(t)
	e.startWing(t, e.url, "web1")
	c := dialCDP(t, pageTarget(t, startChromium(t, bin)))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "Runtime.enable", nil, nil)
	c.call(t, "Page.navigate", map[string]any{"url": e.url + "/app/?direct=off#token=" + e.userTok}, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="web1"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	c.eval(t, `document.querySelector('.wing[data-wing="web1"] .new-session').click()`, nil)
	c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "pty.started")
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.eval(t, `warrenTerm.focus()`, nil)
	const total = 12 << 20
	c.typeLine(t, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; echo; echo flow-$((20+3))", total))
	c.waitJS(t, `/flow-23/.test(warrenBufferText()) ? "yes" : ""`, 3*time.Minute, "the end of the output")
	var n struct {
		Bytes float64 `json:"bytes"`
		Acks  float64 `json:"acks"`
	}
	c.eval(t, `({bytes: window.warrenOutputBytes || 0, acks: window.warrenAcks || 0})`, &n)
	// Live bytes are counted once each: a disconnect would have lost some
	// to the replay (and reattached with a 2 MiB replay).
	if n.Bytes < total || n.Acks < 4 {
		t.Fatalf("%v live bytes drawn of %d, %v acks", n.Bytes, total, n.Acks)
	}
	t.Logf("%v live bytes drawn, %v acks", n.Bytes, n.Acks)
}
