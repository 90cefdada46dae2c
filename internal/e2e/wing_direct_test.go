package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Direct sessions (docs/protocols/wing.md §2.8): wing attach moves a
// session onto a WebRTC DataChannel with the wing; its output then no
// longer crosses the relay.

// directEnv is a relay (with extra environment, e.g. its ICE servers), a
// wing that offers direct sessions on loopback, and alice's tokens.
func startDirectEnv(t *testing.T, relayEnv ...string) *wingEnv {
	t.Helper()
	e := &wingEnv{admin: "wadm_test_direct", port: freePort(t), dataDir: t.TempDir()}
	env := cleanEnv(t, append([]string{"WARREN_RELAY_SERVER_ADMIN_KEY=" + e.admin}, relayEnv...)...)
	e.relay = start(t, t.TempDir(), env, "relay-server", "--listen", fmt.Sprintf("127.0.0.1:%d", e.port),
		"--log-format", "json", "--data-dir", e.dataDir)
	e.url = e.relay.stderr.wait(t, listeningRE, 30*time.Second)[1]
	for kind, dst := range map[string]*string{"wing": &e.wingTok, "user": &e.userTok} {
		r := run(t, t.TempDir(), env, "relay-server", "wings", "token", "--server", e.url, "--kind", kind, "--user", "alice")
		r.wantCode(t, 0, "mint "+kind+" token")
		*dst = strings.TrimSpace(r.stdout)
	}
	wenv := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.wingTok, "SHELL=/bin/sh", "PS1=$ ", "WARREN_WING_SERVE_DIRECT_NETWORKS=127.0.0.0/8")
	d := start(t, t.TempDir(), wenv, "wing", "serve", "--relay", e.url, "--wing-id", "box1",
		"--identity-key", filepath.Join(t.TempDir(), "id.key"), "--log-level", "debug")
	d.stderr.wait(t, registeredRE, 30*time.Second)
	return e
}

// counted is wing attach running a command whose whole output must be
// the lines 1, 2, 3, ... each exactly once and in order.
type counted struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *lines
	done   chan struct{}

	mu   sync.Mutex
	n    int    // last number seen
	bad  string // the first line out of order
	size int64  // bytes read
}

func startCounted(t *testing.T, e *wingEnv, script string, args ...string) *counted {
	t.Helper()
	all := append([]string{"attach", "--relay", e.url, "--log-level", "debug", "--command", script}, args...)
	all = append(all, "box1")
	cmd := exec.Command(filepath.Join(binDir, "wing"), all...)
	cmd.Env = cleanEnv(t, "WARREN_WING_USER_TOKEN="+e.userTok, "WARREN_WING_ATTACH_DIRECT_NETWORKS=127.0.0.0/8")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	se, _ := cmd.StderrPipe()
	c := &counted{cmd: cmd, stdin: stdin, stderr: newLines(se), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		br := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := br.ReadSlice('\n')
			if len(line) > 0 {
				c.take(line)
			}
			if err != nil && err != bufio.ErrBufferFull {
				return
			}
		}
	}()
	go func() {
		<-read
		<-c.stderr.closed
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *counted) take(line []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.size += int64(len(line))
	if c.bad != "" {
		return
	}
	s := strings.TrimRight(string(line), "\r\n")
	if v, err := strconv.Atoi(s); err != nil || v != c.n+1 {
		c.bad = fmt.Sprintf("line %q after %d", s, c.n)
		return
	}
	c.n++
}

// waitN waits until line n came, failing on a line out of order.
func (c *counted) waitN(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		got, bad := c.n, c.bad
		c.mu.Unlock()
		switch {
		case bad != "":
			t.Fatalf("output out of order (a byte lost or repeated): %s\nattach stderr:\n%s", bad, c.stderr)
		case got >= n:
			return
		case time.Now().After(deadline):
			t.Fatalf("output reached line %d of %d within %s\nattach stderr:\n%s", got, n, timeout, c.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *counted) typeLine(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.stdin, s+"\n"); err != nil {
		t.Fatal(err)
	}
}

func (c *counted) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(timeout):
		t.Fatalf("attach still running after %s\nstderr:\n%s", timeout, c.stderr)
	}
	return c.cmd.ProcessState.ExitCode()
}

var (
	directRE   = regexp.MustCompile(`session on a direct channel`)
	fallbackRE = regexp.MustCompile(`direct channel lost; session back on the relay`)
)

// relayBytes is the sum of the hub's frame byte counters.
func relayBytes(t *testing.T, e *wingEnv) float64 {
	t.Helper()
	return metricSum(t, scrape(t, e.port), "warren_wing_hub_bytes_total")
}

func metricSum(t *testing.T, body, name string) float64 {
	t.Helper()
	sum := 0.0
	for _, l := range strings.Split(body, "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q", l)
		}
		sum += v
	}
	return sum
}

// seqLines is how many lines `seq 1 n` needs for at least size bytes on
// a PTY (each line ends in \r\n).
func seqLines(size int) int {
	n, total := 0, 0
	for total < size {
		n++
		total += len(strconv.Itoa(n)) + 2
	}
	return n
}

// flatBound is what the relay may carry for a migrated session while
// megabytes cross the channel: keystrokes, signals, heartbeats.
const flatBound = 64 << 10

// TestWingDirectHostCandidates: on loopback host candidates (no STUN, no
// TURN), 100 MB of output after the migration arrive complete and in
// order while the relay's byte counters stay flat.
func TestWingDirectHostCandidates(t *testing.T) {
	e := startDirectEnv(t)
	n := seqLines(100 << 20)
	// Line 1 comes after stty -echo returned: "go", typed only then, is
	// never echoed into the counted output, whatever the load.
	c := startCounted(t, e, fmt.Sprintf("stty -echo; echo 1; read go; seq 2 %d", n), "--direct", "require")
	c.stderr.wait(t, directRE, 60*time.Second)
	c.waitN(t, 1, 60*time.Second)
	before := relayBytes(t, e)
	c.typeLine(t, "go")
	c.waitN(t, n, 5*time.Minute)
	after := relayBytes(t, e)
	if code := c.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("attach exit %d\nstderr:\n%s", code, c.stderr)
	}
	c.mu.Lock()
	size := c.size
	c.mu.Unlock()
	if size < 100<<20 {
		t.Fatalf("only %d bytes of output", size)
	}
	if d := after - before; d > flatBound {
		t.Fatalf("the relay carried %.0f bytes while %d bytes went over the direct channel", d, size)
	}
	m := scrape(t, e.port)
	if metricSum(t, m, "warren_wing_hub_sessions_migrated_total") != 1 {
		t.Fatalf("metrics: want one migrated session:\n%s", m)
	}
}

// startCoturnOn runs coturn (use-auth-secret) on a given port, so that a
// test can stop it and start it again where clients expect it.
func startCoturnOn(t *testing.T, port int, secret string) *daemon {
	t.Helper()
	bin := needCoturn(t)
	dir := t.TempDir()
	minPort := 49152 + (port%100*100)%15000
	cmd := exec.Command(bin, "-n", "-L", "127.0.0.1", "-E", "127.0.0.1", "-p", strconv.Itoa(port), "--allow-loopback-peers",
		"-r", "lab.local", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780", "--no-tcp-relay",
		"--min-port", strconv.Itoa(minPort), "--max-port", strconv.Itoa(minPort+99),
		"--use-auth-secret", "--static-auth-secret="+secret,
		"--log-file", "stdout", "--simple-log", "--pidfile", filepath.Join(dir, "coturn.pid"))
	cmd.Dir, cmd.Env = dir, cleanEnv(t)
	so, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stdout: newLines(so), done: make(chan struct{})}
	go func() { <-d.stdout.closed; d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		// Stopped by its own PID, never by name.
		cmd.Process.Kill()
		<-d.done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("coturn did not listen on %s:\n%s", addr, d.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWingDirectThroughCoturn: ICE limited to relay candidates, through
// coturn with credentials the relay-server computes from coturn's
// use-auth-secret. The channel is killed mid-stream (coturn stops): the
// session falls back to the relay with no byte lost or repeated, and
// moves back onto a channel once coturn is there again.
func TestWingDirectThroughCoturn(t *testing.T) {
	needCoturn(t)
	const secret = "direct-turn-secret"
	turnPort := freePort(t)
	turnd := startCoturnOn(t, turnPort, secret)
	e := startDirectEnv(t, fmt.Sprintf("WARREN_RELAY_SERVER_WINGS_ICE_TURN_URLS=turn:127.0.0.1:%d?transport=udp", turnPort),
		"WARREN_RELAY_SERVER_WINGS_ICE_TURN_SECRET="+secret, "WARREN_RELAY_SERVER_WINGS_ICE_TTL=10m")

	// The relay hands out TURN REST credentials, never the secret.
	ice := bearerGet(t, e.url+"/api/app/ice", e.userTok)
	if !regexp.MustCompile(`"username":"\d+:alice"`).MatchString(ice) || !strings.Contains(ice, `"credential":"`) || strings.Contains(ice, secret) {
		t.Fatalf("GET /api/app/ice: %s", ice)
	}

	n1 := seqLines(30 << 20)
	n2 := n1 + seqLines(10<<20)
	// Line 1 comes after stty -echo returned (see TestWingDirectHostCandidates).
	c := startCounted(t, e, fmt.Sprintf("stty -echo; echo 1; read go; seq 2 %d; read go; seq %d %d", n1, n1+1, n2),
		"--direct", "require", "--direct-relay-only")
	c.stderr.wait(t, directRE, 60*time.Second)
	c.waitN(t, 1, 60*time.Second)
	c.typeLine(t, "go")
	c.waitN(t, 20000, 2*time.Minute)
	// Kill the channel mid-stream: its only path is through coturn.
	turnd.cmd.Process.Kill()
	<-turnd.done
	c.stderr.wait(t, fallbackRE, 60*time.Second)
	c.waitN(t, n1, 5*time.Minute)

	// coturn is back: the session moves onto a new channel.
	startCoturnOn(t, turnPort, secret)
	deadline := time.Now().Add(90 * time.Second)
	for len(directRE.FindAllString(c.stderr.String(), -1)) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no second migration:\n%s", c.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := relayBytes(t, e)
	c.typeLine(t, "go")
	c.waitN(t, n2, 5*time.Minute)
	after := relayBytes(t, e)
	if code := c.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("attach exit %d\nstderr:\n%s", code, c.stderr)
	}
	if d := after - before; d > flatBound {
		t.Fatalf("after re-migration the relay carried %.0f bytes of a direct session", d)
	}
	m := scrape(t, e.port)
	if metricSum(t, m, "warren_wing_hub_sessions_migrated_total") != 2 || metricSum(t, m, "warren_wing_hub_sessions_fallback_total") != 1 {
		t.Fatalf("metrics: want 2 migrations and 1 fallback:\n%s", m)
	}
}

// TestWingDirectRequireFails: --direct require with no way through (the
// only ICE path is a TURN server that is not there) fails clearly.
func TestWingDirectRequireFails(t *testing.T) {
	dead := freePort(t)
	e := startDirectEnv(t, fmt.Sprintf("WARREN_RELAY_SERVER_WINGS_ICE_TURN_URLS=turn:127.0.0.1:%d?transport=udp", dead),
		"WARREN_RELAY_SERVER_WINGS_ICE_TURN_SECRET=x")
	c := startCounted(t, e, "sleep 120", "--direct", "require", "--direct-relay-only")
	if code := c.exitCode(t, 2*time.Minute); code != 1 {
		t.Fatalf("attach --direct require: exit %d, want 1\nstderr:\n%s", code, c.stderr)
	}
	if !strings.Contains(c.stderr.String(), "direct session required (--direct require), but ICE could not connect") {
		t.Fatalf("stderr does not say ICE failed:\n%s", c.stderr)
	}
	// The session it started is gone, not left running.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := run(t, t.TempDir(), e.userEnv(t), "wing", "sessions", "--relay", e.url, "box1")
		if r.code == 0 && !strings.Contains(r.stdout, "sleep") && !strings.Contains(r.stdout, "command") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the session is still listed:\n%s%s", r.stdout, r.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func bearerGet(t *testing.T, url, tok string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}
