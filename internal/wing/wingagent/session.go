package wingagent

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// inputQueue is the per-session input queue length (docs/protocols/wing.md §2.6).
const inputQueue = 64

// attentionCooldown spaces session.attention events.
const attentionCooldown = 30 * time.Second

type session struct {
	a       *Agent
	id      string
	agent   string
	cwd     string
	user    string // who started it (relay-injected user_id)
	email   string
	started time.Time
	cmd     *exec.Cmd
	pty     *os.File
	input   chan inFrame
	done    chan struct{} // closed when the process has exited and output drained

	// mu guards the session's state; it is never held across a network
	// write, so a stuck relay connection does not stop input, kill or
	// sessions.list. sendMu orders the session's frames on the wire: it is
	// taken while mu is held and mu is released before writing, so frames
	// go out in the order the state changed (replay before live output).
	mu        sync.Mutex
	sendMu    sync.Mutex
	replay    replayBuffer
	out       *wp.Cipher            // controller key; nil while nobody is attached
	viewers   map[string]*wp.Cipher // spectators
	bells     int
	lastAttn  time.Time
	attention bool
	exited    bool
	exitCode  int
	exitErr   string
	reported  bool // pty.exited was sent
	killOnce  sync.Once
	d         directState // the direct path (direct.go)
	flow      flowState   // the controller's output window (flow.go)
}

func (a *Agent) exitedMsg(sid, viewer string, code int, msg string) wp.Exited {
	return wp.Exited{Type: wp.TypePTYExited, SessionID: sid, ExitCode: code, Error: msg, ViewerID: viewer}
}

// argv picks the program for a pty.start.
func (a *Agent) argv(m wp.Start) ([]string, string, error) {
	if m.Command != "" {
		if !a.cfg.AllowCommands {
			return nil, "", errors.New("this wing does not run commands (allow_commands is off)")
		}
		return []string{a.cfg.Shell, "-c", m.Command}, "command", nil
	}
	switch m.Agent {
	case "", "shell", filepath.Base(a.cfg.Shell):
		return []string{a.cfg.Shell}, "shell", nil
	}
	if argv, ok := a.cfg.Agents[m.Agent]; ok && len(argv) > 0 {
		return argv, m.Agent, nil
	}
	return nil, "", fmt.Errorf("unknown agent %q", m.Agent)
}

func (a *Agent) start(ctx context.Context, m wp.Start) {
	fail := func(msg string) {
		a.log.Warn("session refused", "session", m.SessionID, "err", msg)
		a.send(ctx, a.exitedMsg(m.SessionID, "", 1, msg))
	}
	if m.SessionID == "" {
		return
	}
	if m.PublicKey == "" {
		fail("end-to-end encryption is required: pty.start has no public_key")
		return
	}
	id := a.identify(m.UserID, m.Email, m.OrgRole)
	if !a.guard.allowed(id) {
		fail("not_allowed")
		return
	}
	authTok := m.AuthToken
	if len(a.guard.passkeys(id)) > 0 && !a.guard.tokenValid(m.AuthToken, id) {
		if m.PasskeyCredentialID == "" {
			fail("passkey required")
			return
		}
		tok, err := a.passkeyGate(ctx, m.SessionID, id)
		if err != nil {
			fail(err.Error())
			return
		}
		authTok = tok
	}
	c, err := wp.NewCipher(a.cfg.Key, m.PublicKey, wp.InfoPTY)
	if err != nil {
		fail(err.Error())
		return
	}
	if m.Command != "" {
		cmdline, err := c.Open(m.Command)
		if err != nil {
			fail("pty.start command does not decrypt with this wing's key")
			return
		}
		m.Command = string(cmdline)
	}
	argv, agent, err := a.argv(m)
	if err != nil {
		fail(err.Error())
		return
	}
	cwd := m.Cwd
	if st, err := os.Stat(cwd); cwd == "" || err != nil || !st.IsDir() {
		cwd, _ = os.UserHomeDir()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = cwd
	cmd.Env = append(append(append(os.Environ(), "TERM=xterm-256color", "WARREN_SESSION="+m.SessionID), a.hookEnv(m.SessionID)...), a.cfg.Env...)
	cols, rows := m.Cols, m.Rows
	if cols <= 0 || rows <= 0 {
		cols, rows = 80, 24
	}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		fail("start " + argv[0] + ": " + err.Error())
		return
	}
	s := &session{a: a, id: m.SessionID, agent: agent, cwd: cwd, cmd: cmd, pty: f, user: m.UserID, email: m.Email, started: time.Now(),
		input: make(chan inFrame, inputQueue), done: make(chan struct{}),
		replay: replayBuffer{max: a.cfg.ReplaySize}, viewers: map[string]*wp.Cipher{}, out: c,
		flow: flowState{window: a.flowWindow()}}
	s.flowDeclared(m.Acks, m.RelayAcks)
	a.mu.Lock()
	a.sessions[s.id] = s
	a.mu.Unlock()
	a.log.Info("session started", "session", s.id, "agent", agent, "user", m.UserID)
	s.sendMu.Lock()
	a.send(ctx, wp.Started{Type: wp.TypePTYStarted, SessionID: s.id, Agent: agent, PublicKey: a.pub, Cwd: cwd, AuthToken: authTok,
		Command: m.Command != "", Window: a.flowWindow()})
	s.sendMu.Unlock()
	go s.readLoop()
	go s.inputLoop()
}

// readLoop moves PTY output to the replay buffer and the attached users,
// in chunks of at most 128 KiB. A PTY read returns a few KiB at a time;
// a separate reader goroutine queues them so that, under load, one frame
// carries up to 128 KiB instead of one frame per read.
func (s *session) readLoop() {
	ctx := context.Background()
	var (
		mu     sync.Mutex
		cond   = sync.NewCond(&mu)
		queue  []byte
		closed bool
	)
	const maxQueued = 1 << 20
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := s.pty.Read(buf)
			mu.Lock()
			for len(queue) >= maxQueued && !closed {
				cond.Wait()
			}
			queue = append(queue, buf[:n]...)
			if err != nil {
				closed = true
			}
			cond.Broadcast()
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	chunk := make([]byte, wp.ChunkSize)
	for {
		mu.Lock()
		for len(queue) == 0 && !closed {
			cond.Wait()
		}
		if len(queue) == 0 && closed {
			mu.Unlock()
			break
		}
		n := copy(chunk, queue)
		queue = queue[:copy(queue, queue[n:])]
		cond.Broadcast()
		mu.Unlock()
		s.output(ctx, chunk[:n])
		// With a window of output unacknowledged the loop stops here;
		// the reader above fills its queue and stops reading, the PTY
		// buffer fills, and the program blocks (flow.go).
		s.waitWindow()
	}
	code := 0
	if err := s.cmd.Wait(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else {
			code = 1
		}
	}
	s.pty.Close()
	s.mu.Lock()
	s.exited, s.exitCode = true, code
	s.sendMu.Lock()
	end := s.d.outSeq
	s.mu.Unlock()
	ex := s.a.exitedMsg(s.id, "", code, "")
	ex.Seq = &end
	err := s.a.send(ctx, ex)
	s.sendMu.Unlock()
	s.lingerDirect()
	s.mu.Lock()
	s.reported = err == nil
	s.mu.Unlock()
	s.a.log.Info("session exited", "session", s.id, "exit_code", code, "reported", s.reported)
	if s.reported {
		s.a.remove(s)
	} else {
		// Nobody heard it: keep the session so a reattach gets the replay
		// and the exit code; forget it after a while.
		time.AfterFunc(10*time.Minute, func() { s.a.remove(s) })
	}
	close(s.done)
}

func (a *Agent) remove(s *session) {
	a.mu.Lock()
	gone := a.sessions[s.id] == s
	if gone {
		delete(a.sessions, s.id)
	}
	a.mu.Unlock()
	if gone {
		a.recordHistory(s)
	}
}

// passkeyGate sends passkey.challenge for a session and verifies the
// passkey.response (docs/protocols/wing.md §2.7); it returns a fresh auth token.
func (a *Agent) passkeyGate(ctx context.Context, sid string, id identity) (string, error) {
	ch := make([]byte, 32)
	rand.Read(ch)
	resp := make(chan wp.PasskeyResponse, 1)
	a.pkMu.Lock()
	a.pending[sid] = pendingPasskey{resp, id.user}
	a.pkMu.Unlock()
	defer func() {
		a.pkMu.Lock()
		delete(a.pending, sid)
		a.pkMu.Unlock()
	}()
	if err := a.send(ctx, wp.PasskeyChallenge{Type: wp.TypePasskeyChal, SessionID: sid,
		Challenge: base64.RawURLEncoding.EncodeToString(ch)}); err != nil {
		return "", err
	}
	t := time.NewTimer(a.cfg.PasskeyTimeout)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		return "", errors.New("passkey authentication timed out")
	case r := <-resp:
		if err := a.verifyPasskey(id, ch, r); err != nil {
			return "", err
		}
		return a.guard.issue(id), nil
	}
}

// attachGate applies the lock, the session's ownership (for control) and
// the passkey token to a pty.attach; "" lets it through.
func (a *Agent) attachGate(s *session, m wp.Attach) string {
	id := a.identify(m.UserID, m.Email, m.OrgRole)
	if !a.guard.allowed(id) {
		return "not_allowed"
	}
	if !m.Spectate && !a.mayControl(id, s) {
		return "session not found"
	}
	if len(a.guard.passkeys(id)) > 0 && !a.guard.tokenValid(m.AuthToken, id) {
		return "passkey required"
	}
	return ""
}

func (s *session) output(ctx context.Context, p []byte) {
	for {
		s.waitHold()
		s.mu.Lock()
		if !s.held() {
			break
		}
		s.mu.Unlock()
	}
	s.replay.write(p)
	seq := s.d.outSeq
	s.d.outSeq += int64(len(p))
	s.d.record(p)
	var frames []any
	var direct directOut // the controller's channel, if it is on one
	if s.out != nil {
		if direct = s.d.out(s.out, seq); direct.sender == nil {
			frames = append(frames, wp.Output{Type: wp.TypePTYOutput, SessionID: s.id, Data: s.out.Seal(p), Seq: &seq})
		}
	}
	for vid, c := range s.viewers {
		frames = append(frames, wp.Output{Type: wp.TypePTYOutput, SessionID: s.id, Data: c.Seal(p), ViewerID: vid, Seq: &seq})
	}
	// Attention: two consecutive outputs with BEL, at most every 30 s.
	if bytes.IndexByte(p, 0x07) < 0 {
		s.bells = 0
	} else if s.bells++; s.bells >= 2 && time.Since(s.lastAttn) >= attentionCooldown {
		s.bells = 0
		s.lastAttn = time.Now()
		s.attention = true
		nonce := make([]byte, 8)
		rand.Read(nonce)
		frames = append(frames, wp.Attention{Type: wp.TypeAttention, SessionID: s.id, Agent: s.agent, Cwd: s.cwd, Nonce: hex.EncodeToString(nonce)})
	}
	s.sendMu.Lock()
	s.mu.Unlock()
	defer s.sendMu.Unlock()
	direct.send(s.id, p)
	for _, f := range frames {
		s.a.send(ctx, f)
	}
}

func (s *session) ackAttention() {
	s.mu.Lock()
	s.attention = false
	s.mu.Unlock()
}

func (s *session) queueInput(data string, seq *int64) {
	if seq != nil {
		// An ordered frame is never dropped: a gap would hold all later
		// input. It waits for room (the relay or the channel waits too).
		t := time.NewTimer(5 * time.Second)
		defer t.Stop()
		select {
		case s.input <- inFrame{data: data, seq: seq}:
		case <-s.done:
		case <-t.C:
			s.a.log.Warn("session input queue stuck; frame dropped", "session", s.id)
		}
		return
	}
	select {
	case s.input <- inFrame{data: data}:
	default:
		s.a.log.Warn("session input queue full; frame dropped", "session", s.id)
	}
}

func (s *session) inputLoop() {
	for {
		select {
		case <-s.done:
			return
		case in := <-s.input:
			if in.reset {
				s.d.inOrder.Reset()
				s.d.inNext.Store(0)
				continue
			}
			s.mu.Lock()
			c := s.out
			s.mu.Unlock()
			if c == nil {
				s.a.log.Warn("input without an attached key rejected", "session", s.id)
				continue
			}
			p, err := c.Open(in.data)
			if err != nil {
				s.a.log.Warn("input that does not decrypt dropped", "session", s.id)
				continue
			}
			if err := s.writeInput(in.seq, p); err != nil {
				return
			}
		}
	}
}

func (s *session) resize(cols, rows int) {
	if cols <= 0 || rows <= 0 || cols > 0xffff || rows > 0xffff {
		return
	}
	pty.Setsize(s.pty, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
}

func (s *session) kill() {
	s.killOnce.Do(func() {
		if s.cmd.Process != nil {
			// The shell leads its own process group (Setsid): take it all.
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGHUP)
			s.cmd.Process.Signal(syscall.SIGKILL)
			time.AfterFunc(2*time.Second, func() { syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL) })
		}
	})
}

// sendReplay sends a replay snapshot as gzip chunks; called with s.sendMu
// held and s.mu not.
func (s *session) sendReplay(ctx context.Context, snap []byte, c *wp.Cipher, viewer string) {
	for _, z := range wp.CompressChunks(snap) {
		s.a.send(ctx, wp.Output{Type: wp.TypePTYOutput, SessionID: s.id, Data: c.Seal(z), Compressed: true, ViewerID: viewer})
	}
}

func (a *Agent) attach(ctx context.Context, m wp.Attach) {
	s := a.session(m.SessionID)
	if s == nil {
		a.send(ctx, a.exitedMsg(m.SessionID, m.ViewerID, 1, "session not found"))
		return
	}
	if m.PublicKey == "" {
		a.send(ctx, a.exitedMsg(m.SessionID, m.ViewerID, 1, "end-to-end encryption is required: pty.attach has no public_key"))
		return
	}
	if msg := a.attachGate(s, m); msg != "" {
		a.send(ctx, a.exitedMsg(m.SessionID, m.ViewerID, 1, msg))
		return
	}
	if m.Spectate {
		if !a.cfg.Spectate {
			a.send(ctx, a.exitedMsg(m.SessionID, m.ViewerID, 0, "spectate not enabled"))
			return
		}
		c, err := wp.NewCipher(a.cfg.Key, m.PublicKey, wp.InfoPTY)
		if err != nil {
			a.send(ctx, a.exitedMsg(m.SessionID, m.ViewerID, 1, err.Error()))
			return
		}
		// The viewer is live from the snapshot on; its live frames queue
		// behind pty.started and the replay on sendMu.
		s.mu.Lock()
		snap := s.replay.snapshot()
		if !s.exited {
			s.viewers[m.ViewerID] = c
		}
		s.sendMu.Lock()
		s.mu.Unlock()
		defer s.sendMu.Unlock()
		a.send(ctx, wp.Started{Type: wp.TypePTYStarted, SessionID: s.id, Agent: s.agent, PublicKey: a.pub, Cwd: s.cwd, ViewerID: m.ViewerID})
		s.sendReplay(ctx, snap, c, m.ViewerID)
		return
	}
	c, err := wp.NewCipher(a.cfg.Key, m.PublicKey, wp.InfoPTY) // 2. new key
	s.endDirect()                                              // the old controller's channel, if any
	s.resetInput()
	s.mu.Lock()
	s.out = nil // 1. stop the old stream
	// The old controller's window goes with it.
	s.flowReset(s.d.outSeq)
	// Frames sealed with the old key before this point go out before
	// pty.started (sendMu), so the new reader never sees one.
	s.sendMu.Lock()
	s.mu.Unlock()
	if err != nil {
		a.send(ctx, a.exitedMsg(m.SessionID, "", 1, err.Error()))
		s.sendMu.Unlock()
		return
	}
	a.send(ctx, wp.Started{Type: wp.TypePTYStarted, SessionID: s.id, Agent: s.agent, PublicKey: a.pub, Cwd: s.cwd, AuthToken: m.AuthToken,
		Window: a.flowWindow()}) // 3.
	s.sendMu.Unlock()
	if m.Cols > 0 && m.Rows > 0 { // 4.
		s.resize(m.Cols, m.Rows)
		time.Sleep(150 * time.Millisecond)
	}
	s.mu.Lock()
	snap := s.replay.snapshot()
	exited, code, msg := s.exited, s.exitCode, s.exitErr
	if !exited {
		s.out = c // 6. live from the snapshot on: input is accepted at once
		s.flowReset(s.d.outSeq)
		s.flowDeclared(m.Acks, m.RelayAcks)
	}
	s.sendMu.Lock()
	s.mu.Unlock()
	defer s.sendMu.Unlock()
	s.sendReplay(ctx, snap, c, "") // 5., ahead of the live frames waiting on sendMu
	if exited {
		if a.send(ctx, a.exitedMsg(s.id, "", code, msg)) == nil {
			go a.remove(s)
		}
		return
	}
	a.log.Info("session reattached", "session", s.id, "user", m.UserID)
}
