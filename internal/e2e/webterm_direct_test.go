package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWebTerminalDirect: the browser terminal in headless Chromium moves
// its session onto a DataChannel with the browser's own RTCPeerConnection,
// forced through coturn (ICE policy relay, TURN REST credentials from the
// relay-server); output then arrives complete while the relay's byte
// counters stay flat.
func TestWebTerminalDirect(t *testing.T) {
	bin := needChromium(t)
	needCoturn(t)
	const secret = "web-direct-secret"
	turnPort := freePort(t)
	turnd := startCoturnOn(t, turnPort, secret)
	e := startDirectEnv(t, fmt.Sprintf("WARREN_RELAY_SERVER_WINGS_ICE_TURN_URLS=turn:127.0.0.1:%d?transport=udp", turnPort),
		"WARREN_RELAY_SERVER_WINGS_ICE_TURN_SECRET="+secret)

	c := dialCDP(t, pageTarget(t, startChromium(t, bin)))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "Runtime.enable", nil, nil)
	c.call(t, "Page.navigate", map[string]any{"url": e.url + "/app/?direct=relay#token=" + e.userTok}, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="box1"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	c.eval(t, `document.querySelector('.wing[data-wing="box1"] .new-session').click()`, nil)
	c.waitJS(t, `window.warrenSession || ""`, 30*time.Second, "pty.started")
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.waitJS(t, `window.warrenDirect ? "yes" : ""`, 60*time.Second, "the migration to a direct channel")

	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "stty -echo")
	c.waitJS(t, `/stty -echo\s*\n\$ $/.test(warrenBufferText().trimEnd() + " ") ? "yes" : ""`, 30*time.Second, "the prompt after stty")
	time.Sleep(300 * time.Millisecond)
	var b0 int64
	c.eval(t, `window.warrenOutputBytes || 0`, &b0)
	before := relayBytes(t, e)
	const n = 300000
	c.typeLine(t, fmt.Sprintf("seq 1 %d; echo DONE", n))
	c.waitJS(t, `/\n299999\s*\n300000\s*\nDONE\s*\n\$/.test(warrenBufferText()) ? "yes" : ""`, 3*time.Minute, "the output's end")
	want := int64(len("DONE\r\n$ "))
	for i := 1; i <= n; i++ {
		want += int64(len(strconv.Itoa(i)) + 2)
	}
	var b1 int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.eval(t, `window.warrenOutputBytes || 0`, &b1)
		if b1-b0 == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b1-b0 != want {
		t.Fatalf("the page wrote %d bytes of output, want %d (bytes lost or repeated)", b1-b0, want)
	}
	if d := relayBytes(t, e) - before; d > flatBound {
		t.Fatalf("the relay carried %.0f bytes of a direct browser session", d)
	}
	var st string
	c.eval(t, `document.getElementById("status").textContent`, &st)
	if !strings.Contains(st, "(direct)") {
		t.Fatalf("status %q does not say direct", st)
	}
	if m := scrape(t, e.port); metricSum(t, m, "warren_wing_hub_sessions_direct") != 1 {
		t.Fatalf("metrics: want one direct session:\n%s", m)
	}

	// The channel dies mid-stream (coturn stops): the page falls back to
	// the relay and gets every byte once.
	b0 = b1
	const n2 = 2000000
	c.typeLine(t, fmt.Sprintf("seq 1 %d; echo DONE2", n2))
	c.waitJS(t, fmt.Sprintf(`(window.warrenOutputBytes || 0) > %d ? "yes" : ""`, b0+(1<<20)), 2*time.Minute, "output under way")
	turnd.cmd.Process.Kill()
	<-turnd.done
	c.waitJS(t, `window.warrenFallbacks ? "yes" : ""`, time.Minute, "the fallback to the relay")
	c.waitJS(t, `/\n1999999\s*\n2000000\s*\nDONE2\s*\n\$/.test(warrenBufferText()) ? "yes" : ""`, 5*time.Minute, "the output's end after the fallback")
	want = int64(len("DONE2\r\n$ "))
	for i := 1; i <= n2; i++ {
		want += int64(len(strconv.Itoa(i)) + 2)
	}
	deadline = time.Now().Add(10 * time.Second)
	for {
		c.eval(t, `window.warrenOutputBytes || 0`, &b1)
		if b1-b0 == want || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if b1-b0 != want {
		t.Fatalf("after the fallback the page wrote %d bytes of output, want %d (bytes lost or repeated)", b1-b0, want)
	}
}

// TestWebTerminalDirectHost: with no STUN or TURN at all, the browser and
// the wing connect on loopback host candidates.
func TestWebTerminalDirectHost(t *testing.T) {
	bin := needChromium(t)
	e := startDirectEnv(t)
	// Chromium hides host addresses behind mDNS names and leaves loopback
	// out unless told otherwise.
	c := dialCDP(t, pageTarget(t, startChromium(t, bin, "--allow-loopback-in-peer-connection",
		"--disable-features=WebRtcHideLocalIpsWithMdns")))
	c.call(t, "Page.enable", nil, nil)
	c.call(t, "Runtime.enable", nil, nil)
	c.call(t, "Page.navigate", map[string]any{"url": e.url + "/app/#token=" + e.userTok}, nil)
	c.waitJS(t, `document.querySelector('.wing[data-wing="box1"] .new-session') ? "yes" : ""`, 30*time.Second, "the wing list")
	c.eval(t, `document.querySelector('.wing[data-wing="box1"] .new-session').click()`, nil)
	c.waitJS(t, `warrenBufferText().includes("$") ? "yes" : ""`, 30*time.Second, "the shell prompt")
	c.waitJS(t, `window.warrenDirect ? "yes" : ""`, 60*time.Second, "the migration to a direct channel")
	before := relayBytes(t, e)
	c.eval(t, `warrenTerm.focus()`, nil)
	c.typeLine(t, "seq 1 100000 | tail -n 1; echo host-$((6*7))")
	c.waitJS(t, `/\n100000\s*\nhost-42/.test(warrenBufferText()) ? "yes" : ""`, time.Minute, "the output over the channel")
	// Keystrokes and their echo crossed the channel, not the relay.
	if d := relayBytes(t, e) - before; d > flatBound {
		t.Fatalf("the relay carried %.0f bytes of a direct browser session", d)
	}
}
