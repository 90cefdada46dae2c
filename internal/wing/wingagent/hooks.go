package wingagent

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Programs inside a session reach their wing through a Unix socket (the
// "hook socket") to ask the session's user to open a URL (pty.browser_open)
// or to show a preview (pty.preview): `wing open URL`, `wing preview`, and
// $BROWSER, which the wing points at `wing open`. The socket sits in a
// private directory (0700); a request names its session and proves it with
// a token only that session's environment holds.
const (
	// EnvHookSocket is the hook socket's path.
	EnvHookSocket = "WARREN_SESSION_SOCKET"
	// EnvHookToken proves a request comes from the session's environment.
	EnvHookToken = "WARREN_SESSION_TOKEN"
	// EnvSession is the session id (already set for every session).
	EnvSession = "WARREN_SESSION"
)

// HookRequest is one line of JSON on the hook socket.
type HookRequest struct {
	Session string `json:"session"`
	Token   string `json:"token"`
	// Op is "open" (URL) or "preview" (Preview).
	Op      string      `json:"op"`
	URL     string      `json:"url,omitempty"`
	Preview *wp.Preview `json:"preview,omitempty"`
}

// HookReply answers it: Error is empty on success.
type HookReply struct {
	Error string `json:"error,omitempty"`
}

// maxHookLine bounds one request (a markdown preview with JSON escaping).
const maxHookLine = 2*wp.MaxPreviewContent + 16<<10

// ParseHookRequest decodes and checks one request line.
func ParseHookRequest(b []byte) (HookRequest, error) {
	var r HookRequest
	if len(b) > maxHookLine {
		return r, fmt.Errorf("request longer than %d bytes", maxHookLine)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return HookRequest{}, fmt.Errorf("bad request: %w", err)
	}
	if r.Session == "" || r.Token == "" {
		return HookRequest{}, errors.New("bad request: session and token are required (run it inside a wing session)")
	}
	switch r.Op {
	case "open":
		if err := wp.CheckURL(r.URL); err != nil {
			return HookRequest{}, err
		}
	case "preview":
		if r.Preview == nil {
			return HookRequest{}, errors.New("bad request: preview is required")
		}
		if err := r.Preview.Check(); err != nil {
			return HookRequest{}, err
		}
	default:
		return HookRequest{}, fmt.Errorf("bad request: unknown op %q (open or preview)", r.Op)
	}
	return r, nil
}

// hooks is the agent's hook socket.
type hooks struct {
	dir, sock string
	secret    []byte
	ln        net.Listener
	wg        sync.WaitGroup

	mu       sync.Mutex
	previews map[string]wp.Preview // by session id; the last one shown
}

// startHooks opens the hook socket in a fresh private directory.
func (a *Agent) startHooks() error {
	base := os.Getenv("XDG_RUNTIME_DIR")
	if st, err := os.Stat(base); base == "" || err != nil || !st.IsDir() {
		base = os.TempDir()
	}
	// Short on purpose: a socket path is limited to about 100 bytes.
	dir, err := os.MkdirTemp(base, "wing-")
	if err != nil {
		return fmt.Errorf("hook socket: %w", err)
	}
	h := &hooks{dir: dir, sock: filepath.Join(dir, "s"), secret: make([]byte, 32), previews: map[string]wp.Preview{}}
	rand.Read(h.secret)
	ln, err := net.Listen("unix", h.sock)
	if err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("hook socket: %w", err)
	}
	h.ln = ln
	if a.cfg.OpenHelper != "" {
		// $BROWSER for the session's programs: `wing open URL`.
		script := "#!/bin/sh\nexec " + shellQuote(a.cfg.OpenHelper) + " open -- \"$@\"\n"
		if err := os.WriteFile(filepath.Join(dir, "browser"), []byte(script), 0o700); err != nil {
			ln.Close()
			os.RemoveAll(dir)
			return fmt.Errorf("hook socket: %w", err)
		}
	}
	a.hooks = h
	h.wg.Add(1)
	go func() { defer h.wg.Done(); a.acceptHooks() }()
	return nil
}

func (a *Agent) stopHooks() {
	h := a.hooks
	if h == nil {
		return
	}
	h.ln.Close()
	h.wg.Wait()
	os.RemoveAll(h.dir)
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// hookToken is the token of a session: an HMAC of its id under the
// agent's secret, so nothing has to be kept per session.
func (h *hooks) token(sid string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(sid))
	return hex.EncodeToString(m.Sum(nil))
}

// hookEnv is what a session's environment gets to reach the hook socket.
func (a *Agent) hookEnv(sid string) []string {
	h := a.hooks
	if h == nil {
		return nil
	}
	env := []string{EnvHookSocket + "=" + h.sock, EnvHookToken + "=" + h.token(sid)}
	if a.cfg.OpenHelper != "" {
		env = append(env, "BROWSER="+filepath.Join(h.dir, "browser"))
	}
	return env
}

func (a *Agent) acceptHooks() {
	h := a.hooks
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() { defer h.wg.Done(); a.serveHook(c) }()
	}
}

func (a *Agent) serveHook(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, maxHookLine+1)).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return
	}
	reply := HookReply{}
	if err := a.hook(context.Background(), line); err != nil {
		reply.Error = err.Error()
	}
	b, _ := json.Marshal(reply)
	c.Write(append(b, '\n'))
}

// hook carries out one request.
func (a *Agent) hook(ctx context.Context, line []byte) error {
	r, err := ParseHookRequest(line)
	if err != nil {
		return err
	}
	h := a.hooks
	if !hmac.Equal([]byte(r.Token), []byte(h.token(r.Session))) {
		return errors.New("the token does not belong to this session")
	}
	s := a.session(r.Session)
	if s == nil {
		return fmt.Errorf("session %s has ended", r.Session)
	}
	switch r.Op {
	case "open":
		a.log.Info("session asks its user to open a URL", "session", s.id, "url", r.URL)
		s.mu.Lock()
		attached := s.out != nil
		s.sendMu.Lock()
		s.mu.Unlock()
		defer s.sendMu.Unlock()
		if !attached {
			return errors.New("nobody is attached to the session")
		}
		return a.send(ctx, wp.BrowserOpen{Type: wp.TypePTYBrowserOpen, SessionID: s.id, URL: r.URL})
	default:
		p := *r.Preview
		a.prunePreviews()
		h.mu.Lock()
		if p.Mode == "" {
			delete(h.previews, s.id)
		} else {
			h.previews[s.id] = p
		}
		h.mu.Unlock()
		return a.sendPreview(ctx, s, p)
	}
}

// prunePreviews forgets the previews of ended sessions.
func (a *Agent) prunePreviews() {
	h := a.hooks
	h.mu.Lock()
	ids := make([]string, 0, len(h.previews))
	for id := range h.previews {
		ids = append(ids, id)
	}
	h.mu.Unlock()
	for _, id := range ids {
		if a.session(id) == nil {
			h.mu.Lock()
			delete(h.previews, id)
			h.mu.Unlock()
		}
	}
}

// sendPreview sends pty.preview, sealed for the controller and each viewer.
func (a *Agent) sendPreview(ctx context.Context, s *session, p wp.Preview) error {
	b, _ := json.Marshal(p)
	var frames []any
	s.mu.Lock()
	if s.out != nil {
		frames = append(frames, wp.PreviewFrame{Type: wp.TypePTYPreview, SessionID: s.id, Data: s.out.Seal(b)})
	}
	for vid, c := range s.viewers {
		frames = append(frames, wp.PreviewFrame{Type: wp.TypePTYPreview, SessionID: s.id, Data: c.Seal(b), ViewerID: vid})
	}
	s.sendMu.Lock()
	s.mu.Unlock()
	defer s.sendMu.Unlock()
	for _, f := range frames {
		if err := a.send(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// previewOf is the preview a session shows, nil for none.
func (a *Agent) previewOf(sid string) *wp.Preview {
	h := a.hooks
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.previews[sid]; ok {
		return &p
	}
	return nil
}

// SendHook sends one request to the hook socket named by env (as a session
// sees it: EnvHookSocket, EnvHookToken, EnvSession) and returns the wing's
// refusal as an error.
func SendHook(ctx context.Context, getenv func(string) string, r HookRequest) error {
	sock := getenv(EnvHookSocket)
	r.Session, r.Token = getenv(EnvSession), getenv(EnvHookToken)
	if sock == "" || r.Session == "" || r.Token == "" {
		return fmt.Errorf("not inside a wing session: %s, %s and %s are not all set", EnvHookSocket, EnvSession, EnvHookToken)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return fmt.Errorf("reach the wing: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(15 * time.Second))
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("reach the wing: %w", err)
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("the wing did not answer: %w", err)
	}
	var rep HookReply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("the wing's answer: %w", err)
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return nil
}
