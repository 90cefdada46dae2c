package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"golang.org/x/term"

	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Options say what to attach to and where the terminal is.
type Options struct {
	// Client talks to the relay with the user's token. Required.
	Client *wingclient.Client
	// WingID names the wing. Default "": the user's only connected wing.
	WingID string
	// SessionID reattaches this session. Default "": start one.
	SessionID string
	// Command runs this command line (sh -c) instead of the shell.
	// Default "".
	Command string
	// Agent runs this agent of the wing instead of the shell. Default "".
	Agent string
	// Cwd is the working directory on the wing. Default "": the wing's.
	Cwd string
	// Spectate watches SessionID read-only: keys are not sent, the detach
	// key or ctrl-C leaves. Default false.
	Spectate bool

	// In is read for the keys. Required.
	In io.Reader
	// Out receives the session's output. Required.
	Out io.Writer
	// Status receives the "[wing: ...]" lines (session started, detached).
	// Default: discarded.
	Status io.Writer
	// Terminal is the terminal In reads from, if any: when it is one, Run
	// puts it in raw mode (restored before returning), sizes the session
	// from it, follows SIGWINCH and honours DetachKey. Default nil: In is
	// a pipe or a file, sent as input with an end-of-file (ctrl-D) after
	// it.
	Terminal *os.File
	// DetachKey detaches from the session, as "ctrl-X"; "none" or ""
	// disables it. Default "".
	DetachKey string
	// Reconnect is how long to keep reattaching after the relay or the
	// wing drops. Default 0: give up at once.
	Reconnect time.Duration
	// Logger receives debug events (reattaches). Default: discarded.
	Logger *slog.Logger
	// OpenURL opens a URL the session asked for, after the user said yes.
	// Default OpenBrowser ($BROWSER, else xdg-open, else open).
	OpenURL func(url string) error
	// Direct moves the session onto a WebRTC DataChannel (see
	// wingclient.DirectOptions). Default: off.
	Direct wingclient.DirectOptions
}

// Run attaches and returns when the remote program exits (nil, or
// *ExitError with its code), when the user detaches (nil), or on an error:
// ErrNoWing, *AmbiguousWingError, *NoShellError, *RemoteError (the
// session ended with the relay's or wing's error message), or what opening
// the session failed with, unwrapped: wingclient.ErrUnauthorized, a
// *wingclient.RemoteError (a --command for a wing the relay does not
// list), a dial error.
func Run(ctx context.Context, o Options) error {
	if o.Client == nil || o.In == nil || o.Out == nil {
		return errors.New("attach: Client, In and Out are required")
	}
	if o.Status == nil {
		o.Status = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	detachKey, err := ParseDetachKey(o.DetachKey)
	if err != nil {
		return fmt.Errorf("attach: detach key: %w", err)
	}
	wingID, err := pickWing(ctx, o)
	if err != nil {
		return err
	}
	a := &attachment{o: o, wingID: wingID, detachKey: detachKey,
		started: make(chan struct{}), detached: make(chan struct{})}
	if o.Terminal != nil && term.IsTerminal(int(o.Terminal.Fd())) {
		a.tty, a.fd = true, int(o.Terminal.Fd())
	}
	return a.run(ctx)
}

// pickWing returns the wing to attach to: the one named, else the user's
// only wing. A shell or command session is refused up front on a wing
// that lists agents but no shell.
func pickWing(ctx context.Context, o Options) (string, error) {
	wingID := o.WingID
	var wings []wp.WingInfo
	if wingID == "" {
		var err error
		if wings, err = o.Client.Wings(ctx); err != nil {
			return "", err
		}
		switch len(wings) {
		case 0:
			return "", ErrNoWing
		case 1:
			wingID = wings[0].WingID
		default:
			ids := make([]string, len(wings))
			for i, w := range wings {
				ids[i] = w.WingID
			}
			return "", &AmbiguousWingError{WingIDs: ids}
		}
	} else if o.SessionID == "" && o.Agent == "" {
		// Best effort: a relay that does not list wings to a Bearer token
		// (wingthing's) leaves the wing to answer for itself.
		wings, _ = o.Client.Wings(ctx)
	}
	if o.SessionID == "" && o.Agent == "" {
		if err := needShell(wings, wingID, o.Command != ""); err != nil {
			return "", err
		}
	}
	return wingID, nil
}

// needShell refuses a shell or --command session on a wing whose
// registration lists agents but no shell (a wingthing wing offers only AI
// agents): it would only answer "unsupported agent". A wing that lists
// nothing, or is not in the list, is left to answer for itself.
func needShell(wings []wp.WingInfo, wingID string, command bool) error {
	for _, w := range wings {
		if w.WingID != wingID || len(w.Agents) == 0 || slices.Contains(w.Agents, "shell") {
			continue
		}
		return &NoShellError{WingID: wingID, Agents: w.Agents, Command: command}
	}
	return nil
}

// attachment is one Run in progress.
type attachment struct {
	o         Options
	wingID    string
	detachKey byte // 0: none
	tty       bool // o.Terminal is a terminal
	fd        int  // o.Terminal's, when tty
	sess      *wingclient.Session

	started     chan struct{} // closed on the first started or reattached event
	startedOnce bool          // only touched by the session's event callback
	detached    chan struct{} // closed when the user detached
	unsent      int           // bytes of keys not sent while spectating; only the input loop touches it
	notes       notices       // URL prompts and attention (notices.go)
}

func (a *attachment) run(ctx context.Context) error {
	cols, rows := 80, 24
	if a.tty {
		if w, h, err := term.GetSize(a.fd); err == nil && w > 0 && h > 0 {
			cols, rows = w, h
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess, err := a.o.Client.Open(ctx, wingclient.SessionOptions{WingID: a.wingID, SessionID: a.o.SessionID, Agent: a.o.Agent,
		Command: a.o.Command, Cwd: a.o.Cwd, Cols: cols, Rows: rows, Spectate: a.o.Spectate, Direct: a.o.Direct})
	if err != nil {
		return err
	}
	defer sess.Close()
	a.sess = sess

	restore := func() {}
	if a.tty {
		st, err := term.MakeRaw(a.fd)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		restore = func() { term.Restore(a.fd, st) }
		defer restore()
	}

	go a.sendInput(ctx)
	code, err := sess.Run(ctx, a.o.Out, a.onEvent, a.o.Reconnect)
	select {
	case <-a.detached:
		restore()
		a.status("[wing: detached from session %s; reattach with: wing attach --session %s %s]", sess.ID(), sess.ID(), a.wingID)
		return nil
	default:
	}
	restore()
	if errors.Is(err, wingclient.ErrDetached) {
		return nil
	}
	var re *wingclient.RemoteError
	if errors.As(err, &re) {
		return &RemoteError{WingID: a.wingID, Msg: re.Msg, Code: re.Code}
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &ExitError{Code: code}
	}
	return nil
}

// status writes a status line; in raw mode a line needs its \r.
func (a *attachment) status(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.tty {
		msg = "\r\n" + msg + "\r\n"
	} else {
		msg += "\n"
	}
	io.WriteString(a.o.Status, msg)
}

func (a *attachment) onEvent(ev wingclient.Event) {
	switch ev.Kind {
	case "started":
		if !a.startedOnce {
			a.startedOnce = true
			if a.tty && a.detachKey != 0 {
				a.status("[wing: session %s on %s; detach with %s]", ev.SessionID, a.wingID, a.o.DetachKey)
			} else {
				a.o.Logger.Debug("session started", "session", ev.SessionID, "wing", a.wingID)
			}
			close(a.started)
		}
	case "reattached":
		if !a.startedOnce {
			a.startedOnce = true
			close(a.started)
		}
		a.o.Logger.Debug("reattached", "session", ev.SessionID)
	case "offline":
		a.o.Logger.Debug("wing offline; reattaching", "session", ev.SessionID)
	case "reconnecting":
		a.o.Logger.Debug("relay connection lost; reattaching", "session", ev.SessionID, "err", ev.Err)
	case "browser_open", "preview", "attention":
		a.notice(ev)
	case "direct":
		a.o.Logger.Debug("session on a direct channel", "session", ev.SessionID)
	case "fallback":
		a.o.Logger.Debug("direct channel lost; session back on the relay", "session", ev.SessionID, "err", ev.Err)
	case "direct_failed":
		a.o.Logger.Debug("direct channel failed; session stays on the relay", "session", ev.SessionID, "err", ev.Err)
	}
}

// sendInput sends what In gives to the session once it has started, and
// detaches on the detach key. It returns at In's end, or at the first
// read after ctx ended: a read blocked on In is not interrupted.
func (a *attachment) sendInput(ctx context.Context) {
	select {
	case <-a.started:
	case <-ctx.Done():
		return
	}
	if a.tty {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		go a.followSize(ctx, winch)
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := a.o.In.Read(buf)
		if n > 0 && a.keys(ctx, buf[:n]) {
			return
		}
		if err != nil {
			if !a.tty && !a.o.Spectate {
				a.sess.Input(ctx, []byte{0x04}) // EOF for the remote program
			}
			return
		}
	}
}

// keys handles one read of In; true means the user detached.
func (a *attachment) keys(ctx context.Context, p []byte) bool {
	if p = a.answer(ctx, p); len(p) == 0 {
		return false
	}
	if a.o.Spectate {
		// Read-only: only the detach key (or ctrl-C) matters.
		if indexByte(p, a.detachKey) >= 0 || indexByte(p, 0x03) >= 0 {
			close(a.detached)
			a.sess.Detach(ctx)
			return true
		}
		// The running total tells a spectator (and tests) that what was
		// typed has been read and not sent.
		a.unsent += len(p)
		a.o.Logger.Debug("keys not sent: spectating", "bytes", len(p), "total", a.unsent)
		return false
	}
	if a.tty && a.detachKey != 0 {
		if i := indexByte(p, a.detachKey); i >= 0 {
			if i > 0 {
				a.sess.Input(ctx, p[:i])
			}
			close(a.detached)
			a.sess.Detach(ctx)
			return true
		}
	}
	// Keys typed while the session reattaches are dropped.
	a.sess.Input(ctx, p)
	return false
}

// followSize resizes the session when the terminal's window changes.
func (a *attachment) followSize(ctx context.Context, winch chan os.Signal) {
	defer signal.Stop(winch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-winch:
			if w, h, err := term.GetSize(a.fd); err == nil {
				a.sess.Resize(ctx, w, h)
			}
		}
	}
}

func indexByte(p []byte, b byte) int {
	for i, c := range p {
		if c == b {
			return i
		}
	}
	return -1
}
