package attach

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"

	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// notices is what the session asked of the user and is waiting on: a URL
// to confirm, an attention request to acknowledge.
type notices struct {
	mu      sync.Mutex
	pending string // URL waiting for the user's y/N
	attn    bool   // the bell rang; the next key acknowledges it
}

// notice handles browser_open, preview and attention events.
func (a *attachment) notice(ev wingclient.Event) {
	switch ev.Kind {
	case "browser_open":
		a.notes.mu.Lock()
		a.notes.pending = ev.URL
		a.notes.mu.Unlock()
		// Never opened unasked: the next key answers.
		a.status("[wing: the session asks to open %s — open it in your browser? [y/N]]", ev.URL)
	case "preview":
		switch p := ev.Preview; p.Mode {
		case "url":
			a.status("[wing: preview: %s]", p.URL)
		case "markdown":
			first, _, _ := strings.Cut(strings.TrimSpace(p.Content), "\n")
			a.status("[wing: preview (markdown, %d bytes): %s]", len(p.Content), first)
		default:
			a.status("[wing: preview cleared]")
		}
	case "attention":
		// The terminal's own bell; acknowledged by the next key.
		a.o.Out.Write([]byte{0x07})
		a.notes.mu.Lock()
		a.notes.attn = true
		a.notes.mu.Unlock()
	}
}

// answer takes, from a read of keys, the answer to a pending URL prompt
// (its first byte: y or Y opens) and acknowledges a pending attention;
// it returns the keys left for the session.
func (a *attachment) answer(ctx context.Context, p []byte) []byte {
	a.notes.mu.Lock()
	url, attn := a.notes.pending, a.notes.attn
	a.notes.pending, a.notes.attn = "", false
	a.notes.mu.Unlock()
	if attn && !a.o.Spectate {
		a.sess.AckAttention(ctx)
	}
	if url == "" || len(p) == 0 {
		return p
	}
	if p[0] != 'y' && p[0] != 'Y' {
		a.status("[wing: not opened]")
		return p[1:]
	}
	open := a.o.OpenURL
	if open == nil {
		open = OpenBrowser
	}
	if err := open(url); err != nil {
		a.status("[wing: could not open it: %v; the URL is %s]", err, url)
	} else {
		a.status("[wing: opened %s]", url)
	}
	return p[1:]
}

// ErrNoBrowser: neither $BROWSER nor a system opener is available.
var ErrNoBrowser = errors.New("no browser: set $BROWSER, or install xdg-open")

// OpenBrowser opens url with $BROWSER (a command, given the URL as its
// argument; the first of a colon-separated list), else xdg-open (open on
// macOS). It does not wait for the browser.
func OpenBrowser(url string) error {
	var argv []string
	if b := os.Getenv("BROWSER"); b != "" {
		first, _, _ := strings.Cut(b, ":")
		argv = strings.Fields(first)
	}
	if len(argv) == 0 {
		name := "xdg-open"
		if runtime.GOOS == "darwin" {
			name = "open"
		}
		if _, err := exec.LookPath(name); err != nil {
			return ErrNoBrowser
		}
		argv = []string{name}
	}
	cmd := exec.Command(argv[0], append(argv[1:], url)...)
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait()
	return nil
}
