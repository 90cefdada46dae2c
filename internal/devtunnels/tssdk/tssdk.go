package tssdk

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/needtool"
)

// InstallTimeout bounds `npm ci`; a cold install of the pinned packages
// takes seconds, so this only stops a hung registry from hanging the test.
const InstallTimeout = 5 * time.Minute

// CacheEnv overrides where the installed packages are kept.
const CacheEnv = "WARREN_TSSDK_CACHE"

// ScriptsDir is testdata/tssdk of this repository.
func ScriptsDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "tssdk")
}

var (
	installOnce sync.Once
	installDir  string // node_modules
	installErr  error
)

// Install makes sure the pinned SDK is installed and returns its
// node_modules directory. A missing node or npm skips the test (fails under
// needtool.Required), and so does a failed install.
func Install(tb testing.TB) string {
	tb.Helper()
	needtool.Path(tb, "node", "apt-get install nodejs")
	needtool.Path(tb, "npm", "apt-get install npm")
	installOnce.Do(func() { installDir, installErr = install() })
	if installErr != nil {
		msg := "installing the Dev Tunnels TS SDK: " + installErr.Error()
		if needtool.Required() {
			tb.Fatalf("%s, and %s=1 or CI=true says the tools are installed", msg, needtool.RequireEnv)
		}
		tb.Skip(msg)
	}
	return installDir
}

func install() (string, error) {
	src := ScriptsDir()
	lock, err := os.ReadFile(filepath.Join(src, "package-lock.json"))
	if err != nil {
		return "", err
	}
	manifest, err := os.ReadFile(filepath.Join(src, "package.json"))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append(append([]byte{}, manifest...), lock...))
	base := os.Getenv(CacheEnv)
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		base = filepath.Join(cache, "warren", "tssdk")
	}
	final := filepath.Join(base, hex.EncodeToString(sum[:8]))
	modules := filepath.Join(final, "node_modules")
	if _, err := os.Stat(filepath.Join(final, ".complete")); err == nil {
		return modules, nil
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	// Install beside the final place and rename, so that test binaries
	// of several packages installing at once never see half a tree.
	tmp, err := os.MkdirTemp(base, "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": manifest, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), InstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline", "--loglevel=error")
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm ci: %w\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process finished first: use its tree.
		if _, statErr := os.Stat(filepath.Join(final, ".complete")); statErr == nil {
			return modules, nil
		}
		return "", err
	}
	return modules, nil
}

// Event is one JSON line a script wrote.
type Event map[string]any

// Name is the event's "event" field.
func (e Event) Name() string { s, _ := e["event"].(string); return s }

// Str is field k as a string ("" if absent or not a string).
func (e Event) Str(k string) string { s, _ := e[k].(string); return s }

// Num is field k as a number (0 if absent).
func (e Event) Num(k string) float64 { n, _ := e[k].(float64); return n }

// Proc is a running script.
type Proc struct {
	tb     testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	cond   *sync.Cond
	events []Event
	next   int  // first event no Wait has consumed
	eof    bool // stdout ended
	stderr *lockedBuffer
	done   chan struct{}
}

// Start runs testdata/tssdk/<script> under node with env (KEY=VALUE) added
// to a minimal environment. The script is stopped when the test ends, and
// its stderr (the SDK's trace) is logged if the test failed.
func Start(tb testing.TB, script string, env ...string) *Proc {
	tb.Helper()
	modules := Install(tb)
	cmd := exec.Command("node", filepath.Join(ScriptsDir(), script))
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + tb.TempDir(),
		"NODE_PATH=" + modules,
	}, env...)
	p := &Proc{tb: tb, name: script, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("node %s: %v", script, err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var e Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = Event{"event": "unparsed", "line": sc.Text()}
			}
			p.mu.Lock()
			p.events = append(p.events, e)
			p.cond.Broadcast()
			p.mu.Unlock()
		}
		p.mu.Lock()
		p.eof = true
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	go func() {
		<-read
		cmd.Wait()
		close(p.done)
	}()
	tb.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
		if tb.Failed() {
			tb.Logf("%s stdout:\n%s\n%s stderr:\n%s", script, p.eventsText(), script, p.stderr.String())
		}
	})
	return p
}

// Send writes one command line to the script's stdin.
func (p *Proc) Send(cmd map[string]any) {
	p.tb.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := p.stdin.Write(append(b, '\n')); err != nil {
		p.tb.Fatalf("%s: send %s: %v", p.name, b, err)
	}
}

// CloseInput closes the script's stdin, which the scripts take as "stop".
func (p *Proc) CloseInput() { p.stdin.Close() }

// ErrEnded is returned by Next when the script ended without the event.
var ErrEnded = errors.New("script ended")

// Next returns the next event named name, skipping others, within timeout.
// An "error" event ends the wait with that error.
func (p *Proc) Next(name string, timeout time.Duration) (Event, error) {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for ; p.next < len(p.events); p.next++ {
			e := p.events[p.next]
			if e.Name() == name {
				p.next++
				return e, nil
			}
			if e.Name() == "error" && name != "error" {
				p.next++
				return nil, fmt.Errorf("%s: %s", p.name, e.Str("message"))
			}
		}
		if p.eof {
			return nil, fmt.Errorf("%s: waiting for %q: %w", p.name, name, ErrEnded)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no %q event within %s", p.name, name, timeout)
		}
		p.cond.Wait()
	}
}

// Wait is Next that fails the test on error.
func (p *Proc) Wait(name string, timeout time.Duration) Event {
	p.tb.Helper()
	e, err := p.Next(name, timeout)
	if err != nil {
		p.tb.Fatal(err)
	}
	return e
}

// Exit waits for the script to end and returns its exit code.
func (p *Proc) Exit(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("%s still running after %s", p.name, timeout)
	}
}

// Stderr is what the script wrote on stderr so far.
func (p *Proc) Stderr() string { return p.stderr.String() }

func (p *Proc) eventsText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var b strings.Builder
	for _, e := range p.events {
		j, _ := json.Marshal(e)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
