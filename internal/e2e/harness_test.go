package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var binDir string

// coverDir, from WARREN_E2E_COVERDIR (set by `make cover`), asks for the
// binaries built with -cover; each run writes its counters there through
// GOCOVERDIR, so the CLI packages' coverage comes from the e2e tests.
var coverDir = os.Getenv("WARREN_E2E_COVERDIR")

// coverEnv is the GOCOVERDIR entry every binary's environment carries
// under coverDir, nothing otherwise.
func coverEnv() []string {
	if coverDir == "" {
		return nil
	}
	return []string{"GOCOVERDIR=" + coverDir}
}

var binaries = []string{"relay-server", "tunnel-host", "tunnel-client", "tunnel-server", "wing", "probe"}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// warren_testhooks compiles in the test-only hooks (the vk provider's
	// WARREN_TEST_VK_BASE_URL, to reach vkfake); release builds lack them.
	args := []string{"build", "-race", "-tags", "warren_testhooks", "-o", dir + "/"}
	if coverDir != "" {
		// Coverage runs go without the race detector, as `make cover` does
		// for the unit tests.
		if err := os.MkdirAll(coverDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		args = []string{"build", "-tags", "warren_testhooks", "-cover", "-covermode=set", "-coverpkg=github.com/warrenhq/warren/...", "-o", dir + "/"}
	}
	for _, b := range binaries {
		args = append(args, "github.com/warrenhq/warren/cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		// goleak, as in every package's TestMain: the harness's own
		// goroutines (output copiers, waiters) must end with their tests.
		// The Dev Tunnels Go SDK (the interop tests' client) calls
		// ssh.NewClient with a nil request channel, so x/crypto's
		// handleGlobalRequests waits forever, one per SDK connection;
		// warren itself never builds an ssh.Client.
		if err := goleak.Find(goleak.IgnoreTopFunction("golang.org/x/crypto/ssh.(*Client).handleGlobalRequests")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// env is a clean environment for a binary: no WARREN_* from the caller and
// a private HOME/XDG so no user config file is picked up.
func cleanEnv(t *testing.T, extra ...string) []string {
	home := t.TempDir()
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "xdg")}
	env = append(env, coverEnv()...)
	return append(env, extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs a binary to completion in dir with env and a time bound.
func run(t *testing.T, dir string, env []string, bin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, bin), args...)
	cmd.Dir, cmd.Env = dir, env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return result{code, out.String(), errb.String()}
}

func (r result) wantCode(t *testing.T, code int, what string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", what, r.code, code, r.stdout, r.stderr)
	}
}

// daemon is a binary running in the background.
type daemon struct {
	cmd    *exec.Cmd
	stdout *lines
	stderr *lines
	done   chan struct{}
	err    error
}

// lines collects a stream's lines and lets a test wait for one.
type lines struct {
	mu sync.Mutex
	// closed is closed once the stream hit EOF.
	closed chan struct{}
	all    []string
	cond   *sync.Cond
	eof    bool
}

func newLines(r io.Reader) *lines {
	l := &lines{closed: make(chan struct{})}
	l.cond = sync.NewCond(&l.mu)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l.mu.Lock()
			l.all = append(l.all, sc.Text())
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.eof = true
		l.cond.Broadcast()
		l.mu.Unlock()
		close(l.closed)
	}()
	return l
}

// wait returns the submatches of the first line matching re, or fails after timeout.
func (l *lines) wait(t *testing.T, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	timer := time.AfterFunc(timeout, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(timeout)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := 0; ; {
		for ; i < len(l.all); i++ {
			if m := re.FindStringSubmatch(l.all[i]); m != nil {
				return m
			}
		}
		if l.eof || time.Now().After(deadline) {
			t.Fatalf("no line matching %q within %s; got:\n%s", re, timeout, strings.Join(l.all, "\n"))
		}
		l.cond.Wait()
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// start runs a binary in the background; the test's cleanup kills it.
func start(t *testing.T, dir string, env []string, bin string, args ...string) *daemon {
	t.Helper()
	return startIn(t, dir, env, nil, bin, args...)
}

// startIn is start with stdin (nil: none) given to the binary.
func startIn(t *testing.T, dir string, env []string, stdin *os.File, bin string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, bin), args...)
	cmd.Dir, cmd.Env = dir, env
	if stdin != nil {
		cmd.Stdin = stdin
	}
	// Our own pipes, not StdoutPipe: Wait closes those as soon as the
	// process exits, which can drop its last lines (the error a test
	// checks). These reach EOF only when every writer has closed them.
	so, sow, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	se, sew, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = sow, sew
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sow.Close()
	sew.Close()
	d := &daemon{cmd: cmd, stdout: newLines(so), stderr: newLines(se), done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		// done means the output is complete too, unless a child the
		// binary started still holds the pipes.
		grace, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, c := range []chan struct{}{d.stdout.closed, d.stderr.closed} {
			select {
			case <-c:
			case <-grace.Done():
			}
		}
		so.Close()
		se.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
	})
	return d
}

// exitCode waits up to timeout for the daemon to exit.
func (d *daemon) exitCode(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		t.Fatalf("%s still running after %s\nstderr:\n%s", d.cmd.Path, timeout, d.stderr)
	}
	if d.err == nil {
		return 0
	}
	if ee, ok := d.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	t.Fatal(d.err)
	return -1
}

var listeningRE = regexp.MustCompile(`"msg":"relay-server listening".*"url":"(http[^"]+)"`)

// startRelay runs relay-server on a loopback port with a known admin key
// and returns it with its base URL.
func startRelay(t *testing.T, adminKey string, args ...string) (*daemon, string) {
	t.Helper()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+adminKey)
	all := append([]string{"--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir", t.TempDir()}, args...)
	d := start(t, t.TempDir(), env, "relay-server", all...)
	m := d.stderr.wait(t, listeningRE, 30*time.Second)
	return d, m[1]
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, s)
	}
}
