package attach

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/warrenhq/warren/internal/wing/wingagent"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// startWing runs a real wing agent of alice against the hub at url until
// the test ends.
func startWing(t *testing.T, url, wingID string, mod func(*wingagent.Config)) {
	t.Helper()
	key, err := wingagent.LoadOrCreateIdentity(t.TempDir() + "/id.key")
	if err != nil {
		t.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	cfg := wingagent.Config{RelayURL: url, Token: "wing:alice", WingID: wingID, Key: key, Shell: "/bin/sh",
		AllowCommands: true, Env: []string{"PS1=$ "},
		OnState: func(s wingagent.State) {
			if s == wingagent.StateConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := wingagent.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(20 * time.Second):
		t.Fatal("wing did not connect")
	}
}

func client(url string) *wingclient.Client {
	return &wingclient.Client{RelayURL: url, Token: "user:alice"}
}

// syncBuffer is written by the session and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func run(t *testing.T, o Options) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return Run(ctx, o)
}

// TestCommandExitCode: --command's output arrives and its exit code
// comes back as an ExitError; the only wing is picked when none is named.
func TestCommandExitCode(t *testing.T) {
	url := hubtest.Start(t, nil)
	startWing(t, url, "box", nil)
	var out syncBuffer
	err := run(t, Options{Client: client(url), Command: "echo out-$((4+5)); exit 3", In: strings.NewReader(""), Out: &out})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 {
		t.Fatalf("Run: %v, want ExitError 3", err)
	}
	if !strings.Contains(out.String(), "out-9") {
		t.Fatalf("output %q lacks out-9", out.String())
	}
}

// TestPipedInput: input that is not a terminal is sent, then an
// end-of-file; the shell's exit 0 is a nil error.
func TestPipedInput(t *testing.T) {
	url := hubtest.Start(t, nil)
	startWing(t, url, "box", nil)
	var out syncBuffer
	err := run(t, Options{Client: client(url), WingID: "box", In: strings.NewReader("echo in-$((40+2))\n"), Out: &out})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !strings.Contains(out.String(), "in-42") {
		t.Fatalf("output %q lacks in-42", out.String())
	}
}

func TestPickWing(t *testing.T) {
	url := hubtest.Start(t, nil)
	if err := run(t, Options{Client: client(url), In: strings.NewReader(""), Out: io.Discard}); !errors.Is(err, ErrNoWing) {
		t.Fatalf("no wing: %v, want ErrNoWing", err)
	}
	startWing(t, url, "box", nil)
	startWing(t, url, "box2", nil)
	err := run(t, Options{Client: client(url), In: strings.NewReader(""), Out: io.Discard})
	var ae *AmbiguousWingError
	if !errors.As(err, &ae) || strings.Join(ae.WingIDs, ",") != "box,box2" && strings.Join(ae.WingIDs, ",") != "box2,box" {
		t.Fatalf("two wings: %v, want AmbiguousWingError", err)
	}
}

// TestRemoteError: an agent the wing does not offer ends the session with
// the wing's message, typed.
func TestRemoteError(t *testing.T) {
	url := hubtest.Start(t, nil)
	startWing(t, url, "box", nil)
	err := run(t, Options{Client: client(url), WingID: "box", Agent: "nosuch", In: strings.NewReader(""), Out: io.Discard})
	var re *RemoteError
	if !errors.As(err, &re) || re.WingID != "box" || !strings.Contains(re.Msg, "agent") {
		t.Fatalf("Run: %v (%T), want RemoteError about the agent", err, err)
	}
}

func TestNeedShell(t *testing.T) {
	wings := []wp.WingInfo{{WingID: "ai", Agents: []string{"claude", "codex"}}, {WingID: "box", Agents: []string{"shell"}}, {WingID: "old"}}
	var ns *NoShellError
	if err := needShell(wings, "ai", true); !errors.As(err, &ns) || !ns.Command || ns.Agents[0] != "claude" {
		t.Fatalf("wing without a shell: %v", err)
	}
	for _, id := range []string{"box", "old", "unlisted"} {
		if err := needShell(wings, id, false); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
}

// TestSpectateLeavesOnCtrlC: a spectator's keys are not sent; ctrl-C
// detaches with the reattach hint on Status, and the session lives on.
func TestSpectateLeavesOnCtrlC(t *testing.T) {
	url := hubtest.Start(t, nil)
	startWing(t, url, "box", func(c *wingagent.Config) { c.Spectate = true })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	owner, err := client(url).Open(ctx, wingclient.SessionOptions{WingID: "box", Cols: 80, Rows: 24})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	started := make(chan string, 1)
	ownerDone := make(chan struct{})
	go func() {
		defer close(ownerDone)
		owner.Run(ctx, io.Discard, func(ev wingclient.Event) {
			if ev.Kind == "started" {
				started <- ev.SessionID
			}
		}, 0)
	}()
	defer func() { cancel(); <-ownerDone }()
	var sid string
	select {
	case sid = <-started:
	case <-ctx.Done():
		t.Fatal("the owner's session did not start")
	}
	var status syncBuffer
	err = Run(ctx, Options{Client: client(url), WingID: "box", SessionID: sid, Spectate: true,
		In: strings.NewReader("ls\x03"), Out: io.Discard, Status: &status})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	want := "[wing: detached from session " + sid + "; reattach with: wing attach --session " + sid + " box]\n"
	if status.String() != want {
		t.Fatalf("status %q, want %q", status.String(), want)
	}
}

// TestTerminalDetachKey: on a terminal, the keys before the detach key
// are sent, the detach key detaches, and the terminal leaves raw mode.
func TestTerminalDetachKey(t *testing.T) {
	url := hubtest.Start(t, nil)
	startWing(t, url, "box", nil)
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	go io.Copy(io.Discard, ptmx) // what the terminal echoes
	var out, status syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(t, Options{Client: client(url), WingID: "box", In: tty, Terminal: tty, Out: &out, Status: &status,
			DetachKey: "ctrl-]"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(status.String(), "detach with ctrl-]") {
		if time.Now().After(deadline) {
			t.Fatalf("no started line; status %q", status.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte("echo k-$((6*7))\r")); err != nil {
		t.Fatal(err)
	}
	for !strings.Contains(out.String(), "k-42") {
		if time.Now().After(deadline) {
			t.Fatalf("no k-42 in %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte{0x1d}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the detach key did not detach")
	}
	if !strings.Contains(status.String(), "\r\n[wing: detached from session ") {
		t.Fatalf("status %q lacks the detached line", status.String())
	}
	if isRaw(t, tty) {
		t.Fatal("the terminal is still in raw mode")
	}
}

// isRaw says whether f's terminal has line editing off.
func isRaw(t *testing.T, f *os.File) bool {
	t.Helper()
	tio, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	return tio.Lflag&unix.ICANON == 0
}
