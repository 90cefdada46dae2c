package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
)

// wingEnv is a relay with a wing token and a user token for alice.
type wingEnv struct {
	relay   *daemon
	url     string
	port    int
	dataDir string
	admin   string
	wingTok string
	userTok string
}

func startWingRelay(t *testing.T) *wingEnv {
	t.Helper()
	e := &wingEnv{admin: "wadm_test_" + t.Name(), port: freePort(t), dataDir: t.TempDir()}
	e.startRelay(t)
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	r := run(t, t.TempDir(), env, "relay-server", "wings", "token", "--server", e.url, "--kind", "wing", "--user", "alice")
	r.wantCode(t, 0, "mint wing token")
	e.wingTok = strings.TrimSpace(r.stdout)
	r = run(t, t.TempDir(), env, "relay-server", "wings", "token", "--server", e.url, "--kind", "user", "--user", "alice")
	r.wantCode(t, 0, "mint user token")
	e.userTok = strings.TrimSpace(r.stdout)
	return e
}

func (e *wingEnv) startRelay(t *testing.T) {
	t.Helper()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+e.admin)
	e.relay = start(t, t.TempDir(), env, "relay-server", "--listen", fmt.Sprintf("127.0.0.1:%d", e.port),
		"--log-format", "json", "--data-dir", e.dataDir)
	e.url = e.relay.stderr.wait(t, listeningRE, 30*time.Second)[1]
}

var registeredRE = regexp.MustCompile(`registered with the relay`)

// startWing runs wing serve against relayURL and waits for registration.
func (e *wingEnv) startWing(t *testing.T, relayURL, wingID string) *daemon {
	t.Helper()
	env := cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.wingTok, "SHELL=/bin/sh", "PS1=$ ")
	d := start(t, t.TempDir(), env, "wing", "serve", "--relay", relayURL, "--wing-id", wingID,
		"--identity-key", filepath.Join(t.TempDir(), "id.key"))
	d.stderr.wait(t, registeredRE, 30*time.Second)
	return d
}

func (e *wingEnv) userEnv(t *testing.T) []string {
	return cleanEnv(t, "WARREN_WING_USER_TOKEN="+e.userTok)
}

// term is a binary running on a real PTY, like a user's terminal.
type term struct {
	ptmx *os.File
	cmd  *exec.Cmd
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	eof  chan struct{}
	err  error
}

func startInPTY(t *testing.T, env []string, rows, cols int, bin string, args ...string) *term {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Env, cmd.Dir = env, t.TempDir()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(rows), Cols: uint16(cols)})
	if err != nil {
		t.Fatal(err)
	}
	tm := &term{ptmx: f, cmd: cmd, done: make(chan struct{}), eof: make(chan struct{})}
	go func() {
		b := make([]byte, 32<<10)
		for {
			n, err := f.Read(b)
			tm.mu.Lock()
			tm.buf.Write(b[:n])
			tm.mu.Unlock()
			if err != nil {
				close(tm.eof)
				return
			}
		}
	}()
	go func() { tm.err = cmd.Wait(); close(tm.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-tm.done
		f.Close()
	})
	return tm
}

// wait returns the submatches of re in the terminal's output after from.
func (tm *term) wait(t *testing.T, from int, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tm.mu.Lock()
		s := tm.buf.String()
		tm.mu.Unlock()
		if from > len(s) {
			from = len(s)
		}
		if m := re.FindStringSubmatch(s[from:]); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("terminal: no match for %q within %s; output after %d:\n%q", re, timeout, from, s[from:])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tm *term) output() string { tm.mu.Lock(); defer tm.mu.Unlock(); return tm.buf.String() }

func (tm *term) len() int { tm.mu.Lock(); defer tm.mu.Unlock(); return tm.buf.Len() }

func (tm *term) typeLine(t *testing.T, s string) int {
	t.Helper()
	n := tm.len()
	if _, err := io.WriteString(tm.ptmx, s+"\r"); err != nil {
		t.Fatal(err)
	}
	return n
}

func (tm *term) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-tm.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s; output:\n%q", tm.cmd.Path, timeout, tm.output())
	}
	<-tm.eof
	if ee, ok := tm.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if tm.err != nil {
		t.Fatal(tm.err)
	}
	return 0
}

// TestWingAttachSession drives wing attach on a real PTY against wing serve
// and relay-server: input, decrypted output, resize, detach, reattach with
// replay, relay restart with the session continuing, and the exit code.
func TestWingAttachSession(t *testing.T) {
	e := startWingRelay(t)
	wingd := e.startWing(t, e.url, "box1")

	r := run(t, t.TempDir(), e.userEnv(t), "wing", "ls", "--relay", e.url, "-o", "json")
	r.wantCode(t, 0, "wing ls")
	var wings []struct {
		WingID    string `json:"wing_id"`
		PublicKey string `json:"public_key"`
	}
	decodeJSON(t, r.stdout, &wings)
	if len(wings) != 1 || wings[0].WingID != "box1" || len(wings[0].PublicKey) != 44 {
		t.Fatalf("wing ls: %s", r.stdout)
	}

	tm := startInPTY(t, e.userEnv(t), 30, 100, "wing", "attach", "--relay", e.url, "box1")
	sid := tm.wait(t, 0, regexp.MustCompile(`session ([0-9a-f]{8}) on box1`), 30*time.Second)[1]

	at := tm.typeLine(t, "echo in-$((40+2))")
	tm.wait(t, at, regexp.MustCompile(`in-42`), 20*time.Second)

	at = tm.typeLine(t, "stty size")
	tm.wait(t, at, regexp.MustCompile(`\n30 100\r`), 20*time.Second)

	// SIGWINCH on the local terminal reaches the remote PTY.
	if err := pty.Setsize(tm.ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		at = tm.typeLine(t, "stty size")
		tm.wait(t, at, regexp.MustCompile(`\n\d+ \d+\r`), 20*time.Second)
		if regexp.MustCompile(`\n40 120\r`).MatchString(tm.output()[at:]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("resize did not reach the remote PTY")
		}
		time.Sleep(100 * time.Millisecond)
	}

	at = tm.typeLine(t, "echo screen-$((1000+337))")
	tm.wait(t, at, regexp.MustCompile(`screen-1337`), 20*time.Second)
	// Detach with ctrl-].
	tm.ptmx.Write([]byte{0x1d})
	tm.wait(t, at, regexp.MustCompile(`detached from session `+sid), 20*time.Second)
	if code := tm.exitCode(t, 20*time.Second); code != 0 {
		t.Fatalf("detach: exit %d", code)
	}

	// Reattach: the replay shows the screen.
	tm2 := startInPTY(t, e.userEnv(t), 40, 120, "wing", "attach", "--relay", e.url, "--session", sid, "box1")
	tm2.wait(t, 0, regexp.MustCompile(`screen-1337`), 30*time.Second)
	at = tm2.typeLine(t, "echo again-$((2+3))")
	tm2.wait(t, at, regexp.MustCompile(`again-5`), 20*time.Second)

	// The relay restarts: the wing reconnects, the session continues.
	e.relay.cmd.Process.Signal(syscall.SIGTERM)
	if code := e.relay.exitCode(t, 30*time.Second); code != 0 {
		t.Fatalf("relay stop: exit %d", code)
	}
	e.startRelay(t)
	deadline = time.Now().Add(30 * time.Second)
	for strings.Count(wingd.stderr.String(), "registered with the relay") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("wing did not re-register:\n%s", wingd.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(wingd.stderr.String(), "relay restarting; reconnecting") {
		t.Fatalf("wing did not see relay.restart:\n%s", wingd.stderr)
	}
	// attach reattaches by itself; keep typing until the output comes back.
	deadline = time.Now().Add(30 * time.Second)
	for {
		at = tm2.typeLine(t, "echo after-$((7*6))")
		time.Sleep(300 * time.Millisecond)
		if strings.Contains(tm2.output()[at:], "after-42") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session did not continue after the relay restart; output:\n%q", tm2.output())
		}
	}

	tm2.typeLine(t, "exit 5")
	if code := tm2.exitCode(t, 20*time.Second); code != 5 {
		t.Fatalf("attach exit code %d, want 5 (the remote shell's)", code)
	}
}

// TestWingAttachCommand runs one command non-interactively (stdin is not a
// terminal) and through piped stdin.
func TestWingAttachCommand(t *testing.T) {
	e := startWingRelay(t)
	e.startWing(t, e.url, "box1")
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--command", "echo out-$((3*3)); exit 4")
	if r.code != 4 || !strings.Contains(r.stdout, "out-9") {
		t.Fatalf("attach --command: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	cmd := exec.Command(filepath.Join(binDir, "wing"), "attach", "--relay", e.url, "box1")
	cmd.Env = e.userEnv(t)
	cmd.Stdin = strings.NewReader("echo piped-$((5+5))\nexit 0\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), "piped-10") {
		t.Fatalf("piped attach: %v, %q", err, out)
	}
	// The relay's metrics count the wing, sessions and bytes, with no
	// session ids as labels.
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"warren_wing_hub_wings 1", "warren_wing_hub_sessions_started_total 2", `warren_wing_hub_bytes_total{direction="to_user"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), "session_id") {
		t.Error("a metric is labelled by session id")
	}
	// A wing that does not exist: a clear error, exit 1.
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--command", "true", "nosuch")
	if r.code != 1 || !strings.Contains(r.stderr, "no wing connected") {
		t.Fatalf("attach to a missing wing: exit %d, stderr %q", r.code, r.stderr)
	}
	// A bad user token.
	r = run(t, t.TempDir(), cleanEnv(t, "WARREN_WING_USER_TOKEN=bad"), "wing", "ls", "--relay", e.url)
	if r.code != 1 || !strings.Contains(r.stderr, "401") {
		t.Fatalf("ls with a bad token: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestWingBadToken: a rejected wing token stops wing serve with exit code 1
// and a clear message, without retrying.
func TestWingBadToken(t *testing.T) {
	e := startWingRelay(t)
	env := cleanEnv(t, "WARREN_WING_SERVE_TOKEN=not-a-token")
	d := start(t, t.TempDir(), env, "wing", "serve", "--relay", e.url, "--identity-key", filepath.Join(t.TempDir(), "k"))
	if code := d.exitCode(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(d.stderr.String(), "rejected the wing token (401)") || !strings.Contains(d.stderr.String(), "not retrying") {
		t.Fatalf("stderr: %s", d.stderr)
	}
	// A user token is not a wing token either.
	env = cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.userTok)
	d = start(t, t.TempDir(), env, "wing", "serve", "--relay", e.url, "--identity-key", filepath.Join(t.TempDir(), "k"))
	if code := d.exitCode(t, 30*time.Second); code != 1 {
		t.Fatalf("user token as wing token: exit %d, want 1", code)
	}
	// The identity key file is created with mode 0600.
	keyFile := filepath.Join(t.TempDir(), "sub", "id.key")
	d = start(t, t.TempDir(), cleanEnv(t, "WARREN_WING_SERVE_TOKEN="+e.wingTok), "wing", "serve", "--relay", e.url, "--identity-key", keyFile)
	d.stderr.wait(t, registeredRE, 30*time.Second)
	st, err := os.Stat(keyFile)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity key: %v %v", st, err)
	}
}

// recordingProxy forwards TCP to target and records every byte in both
// directions.
type recordingProxy struct {
	addr string
	mu   sync.Mutex
	up   bytes.Buffer // client → relay
	down bytes.Buffer // relay → client
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns []net.Conn
	var cmu sync.Mutex
	t.Cleanup(func() {
		ln.Close()
		cmu.Lock()
		for _, c := range conns {
			c.Close()
		}
		cmu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			cmu.Lock()
			conns = append(conns, c, s)
			cmu.Unlock()
			copyRec := func(dst, src net.Conn, rec *bytes.Buffer) {
				defer wg.Done()
				b := make([]byte, 32<<10)
				for {
					n, err := src.Read(b)
					if n > 0 {
						p.mu.Lock()
						rec.Write(b[:n])
						p.mu.Unlock()
						dst.Write(b[:n])
					}
					if err != nil {
						dst.Close()
						return
					}
				}
			}
			wg.Add(2)
			go copyRec(s, c, &p.up)
			go copyRec(c, s, &p.down)
		}
	}()
	return p
}

// TestWingRelayNeverSeesPlaintext: every byte between the relay and its
// peers (wing and user) is recorded by a TCP proxy in front of the relay.
// A known input and the output it produces cross the relay; neither
// appears in the recording. Client→relay WebSocket frames are masked, so
// the decisive direction is relay→peer (unmasked): relay→wing carries the
// input as the relay forwards it, relay→user the output.
func TestWingRelayNeverSeesPlaintext(t *testing.T) {
	e := startWingRelay(t)
	p := startRecordingProxy(t, strings.TrimPrefix(e.url, "http://"))
	via := "http://" + p.addr
	e.startWing(t, via, "box1")

	const input = "echo zq$((6*7))xv-$((100+23))"
	const output = "zq42xv-123"
	cmd := exec.Command(filepath.Join(binDir, "wing"), "attach", "--relay", via, "box1")
	cmd.Env = e.userEnv(t)
	cmd.Stdin = strings.NewReader(input + "\nexit 0\n")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), output) {
		t.Fatalf("attach: %v, %q", err, out)
	}
	// A command line given to attach --command is encrypted too.
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", via, "--command", "echo cm$((2*21))dx", "box1")
	if r.code != 0 || !strings.Contains(r.stdout, "cm42dx") {
		t.Fatalf("attach --command: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	down, up := p.down.Bytes(), p.up.Bytes()
	// The recording is real: it holds the routed frames in clear envelopes.
	for _, want := range []string{`"type":"pty.input"`, `"type":"pty.output"`, `"type":"pty.start"`} {
		if !bytes.Contains(down, []byte(want)) {
			t.Fatalf("recording has no %s frame; the proxy did not see the session", want)
		}
	}
	for _, secret := range []string{input, output, "zq$((6*7))", "zq42xv", "exit 0", "cm$((2*21))dx", "cm42dx"} {
		if bytes.Contains(down, []byte(secret)) || bytes.Contains(up, []byte(secret)) {
			t.Fatalf("plaintext %q crossed the relay", secret)
		}
	}
}
