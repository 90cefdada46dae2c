package wingagent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// tunnelRequest is the decrypted inner request (docs/protocols/wing.md §2.8).
type tunnelRequest struct {
	Type      string `json:"type"`
	AuthToken string `json:"auth_token"`
	Path      string `json:"path"`
	SessionID string `json:"session_id"`
	Offset    int    `json:"offset"`
	Limit     int    `json:"limit"`
	Kind      string `json:"kind"`
	User      string `json:"user"`
	wp.PasskeyResponse
}

// tunnelMessage is tunnel.req as the wing reads it, with the identity the
// relay injected.
type tunnelMessage struct {
	wp.TunnelReq
	SenderEmail   string `json:"sender_email"`
	SenderOrgRole string `json:"sender_org_role"`
}

// cipherCache keeps one wt-tunnel key per sender_pub (docs/protocols/wing.md §2.8),
// bounded: a full cache is emptied rather than grown.
type cipherCache struct {
	mu sync.Mutex
	m  map[string]*wp.Cipher
}

const cipherCacheMax = 1024

func (cc *cipherCache) get(a *Agent, pub string) (*wp.Cipher, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if c, ok := cc.m[pub]; ok {
		return c, nil
	}
	c, err := wp.NewCipher(a.cfg.Key, pub, wp.InfoTunnel)
	if err != nil {
		return nil, err
	}
	if cc.m == nil || len(cc.m) >= cipherCacheMax {
		cc.m = map[string]*wp.Cipher{}
	}
	cc.m[pub] = c
	return c, nil
}

// streamChunk is the largest plaintext in one tunnel.stream payload.
const streamChunk = 64 << 10

// tunnel answers one encrypted request. Payloads that do not decrypt are
// dropped without a reply.
func (a *Agent) tunnel(ctx context.Context, raw []byte) {
	var m tunnelMessage
	if err := wp.Decode(raw, &m); err != nil {
		return
	}
	c, err := a.ciphers.get(a, m.SenderPub)
	if err != nil {
		return
	}
	plain, err := c.Open(m.Payload)
	if err != nil {
		a.log.Debug("tunnel request that does not decrypt dropped", "request", m.RequestID)
		return
	}
	var req tunnelRequest
	if err := json.Unmarshal(plain, &req); err != nil {
		a.reply(ctx, c, m.RequestID, map[string]string{"error": "bad request: " + err.Error()})
		return
	}
	id := a.identify(m.SenderUserID, m.SenderEmail, m.SenderOrgRole)
	if res := a.gateTunnel(id, req); res != nil {
		a.reply(ctx, c, m.RequestID, res)
		return
	}
	if req.Type == "audit.request" {
		a.streamReplay(ctx, c, m.RequestID, id, req)
		return
	}
	a.reply(ctx, c, m.RequestID, a.answer(ctx, id, req))
}

func (a *Agent) reply(ctx context.Context, c *wp.Cipher, rid string, v any) {
	b, _ := json.Marshal(v)
	a.send(ctx, wp.TunnelRes{Type: wp.TypeTunnelRes, RequestID: rid, Payload: c.Seal(b)})
}

// gateTunnel applies the lock and the passkey gate (docs/protocols/wing.md §2.8); nil
// lets the request through.
func (a *Agent) gateTunnel(id identity, req tunnelRequest) any {
	if !a.guard.allowed(id) {
		return map[string]string{"error": "not_allowed"}
	}
	switch req.Type {
	case "passkey.challenge", "passkey.auth":
		return nil
	}
	if len(a.guard.passkeys(id)) > 0 && !a.guard.tokenValid(req.AuthToken, id) {
		host, _ := os.Hostname()
		return map[string]any{"error": "passkey_required", "hostname": host, "platform": runtime.GOOS,
			"version": a.cfg.Version, "locked": true}
	}
	return nil
}

func errorf(msg string) map[string]string { return map[string]string{"error": msg} }

func (a *Agent) answer(ctx context.Context, id identity, req tunnelRequest) any {
	switch req.Type {
	case "wing.info":
		acc := a.guard.snapshot()
		return map[string]any{"hostname": a.cfg.Hostname, "platform": runtime.GOOS, "version": a.cfg.Version,
			"agents": a.agentNames(), "projects": []any{}, "locked": acc.Locked, "spectate": a.cfg.Spectate,
			"allowed_count": len(acc.Allow), "passkey_enrolled": len(a.guard.passkeys(id)) > 0}
	case "sessions.list":
		return map[string]any{"sessions": a.sessionList(id)}
	case "sessions.history":
		return a.historyPage(id, req.Offset, req.Limit)
	case "dir.list":
		entries, err := listDirs(req.Path)
		if err != nil {
			return errorf(err.Error())
		}
		return map[string]any{"entries": entries}
	case "pty.kill":
		s := a.session(req.SessionID)
		if s == nil || !a.mayControl(id, s) {
			return errorf("session not found")
		}
		s.kill()
		return map[string]any{}
	case "allow.list":
		if !id.owner() {
			return errorf("not_allowed")
		}
		acc := a.guard.snapshot()
		users := []map[string]any{}
		for _, e := range acc.Allow {
			users = append(users, map[string]any{"user": e.User, "passkeys": len(e.Passkeys)})
		}
		return map[string]any{"locked": acc.Locked, "allowed": users}
	case "allow.add", "allow.remove":
		if !id.owner() {
			return errorf("not_allowed")
		}
		user := strings.TrimSpace(req.User)
		if user == "" {
			return errorf(req.Type + ": user is required")
		}
		changed, err := a.editAllow(req.Type == "allow.add", user)
		if err != nil {
			a.log.Error("allow list edit not saved", "op", req.Type, "user", user, "err", err)
			return errorf(req.Type + ": could not save the change on the wing")
		}
		if changed {
			a.log.Info("allow list changed", "op", req.Type, "user", user, "by", id.user)
			a.sendConfig(ctx)
		}
		return map[string]any{"changed": changed, "allowed_count": len(a.guard.snapshot().Allow)}
	case "passkey.challenge":
		ch := make([]byte, 32)
		rand.Read(ch)
		a.pkMu.Lock()
		a.tunnelChallenges[id.user] = pendingChallenge{ch, a.cfg.Now().Add(a.cfg.PasskeyTimeout)}
		a.pkMu.Unlock()
		return map[string]string{"challenge": base64.RawURLEncoding.EncodeToString(ch)}
	case "passkey.auth":
		a.pkMu.Lock()
		pc, ok := a.tunnelChallenges[id.user]
		delete(a.tunnelChallenges, id.user)
		a.pkMu.Unlock()
		if !ok || a.cfg.Now().After(pc.exp) {
			return errorf("no passkey challenge outstanding (ask passkey.challenge first)")
		}
		if err := a.verifyPasskey(id, pc.challenge, req.PasskeyResponse); err != nil {
			return errorf(err.Error())
		}
		return map[string]string{"auth_token": a.guard.issue(id)}
	case "webrtc.offer":
		return errorf("unsupported: webrtc.offer")
	default:
		return errorf("unsupported: " + req.Type)
	}
}

type pendingChallenge struct {
	challenge []byte
	exp       time.Time
}

// verifyPasskey checks an assertion against the keys of id.
func (a *Agent) verifyPasskey(id identity, challenge []byte, r wp.PasskeyResponse) error {
	var keys [][]byte
	for _, k := range a.guard.passkeys(id) {
		keys = append(keys, k.PublicKey)
	}
	if _, err := wp.VerifyPasskey(r, challenge, keys); err != nil {
		a.log.Warn("passkey assertion refused", "user", id.user)
		return err
	}
	return nil
}

// mayControl: the session's own user, or the owner.
func (a *Agent) mayControl(id identity, s *session) bool {
	return id.owner() || (s.user != "" && s.user == id.user)
}

type sessionItem struct {
	SessionID      string `json:"session_id"`
	Agent          string `json:"agent"`
	Cwd            string `json:"cwd"`
	EggConfig      string `json:"egg_config"`
	NeedsAttention bool   `json:"needs_attention"`
	Audit          bool   `json:"audit"`
	Chat           bool   `json:"chat"`
	UserID         string `json:"user_id"`
	Email          string `json:"email"`
	StartedAt      string `json:"started_at,omitempty"`
	EndedAt        string `json:"ended_at,omitempty"`
	ExitCode       *int   `json:"exit_code,omitempty"`
	// Preview is what the session shows beside the terminal (warren).
	Preview *wp.Preview `json:"preview,omitempty"`
}

func (a *Agent) sessionList(id identity) []sessionItem {
	list := []sessionItem{}
	a.mu.Lock()
	for _, s := range a.sessions {
		if !a.mayControl(id, s) {
			continue
		}
		s.mu.Lock()
		list = append(list, sessionItem{SessionID: s.id, Agent: s.agent, Cwd: s.cwd, NeedsAttention: s.attention,
			UserID: s.user, Email: s.email, StartedAt: s.started.UTC().Format(time.RFC3339), Preview: a.previewOf(s.id)})
		s.mu.Unlock()
	}
	a.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].StartedAt < list[j].StartedAt })
	return list
}

// historyMax bounds the ended sessions kept for sessions.history.
const historyMax = 1000

func (a *Agent) recordHistory(s *session) {
	s.mu.Lock()
	code := s.exitCode
	it := sessionItem{SessionID: s.id, Agent: s.agent, Cwd: s.cwd, UserID: s.user, Email: s.email,
		StartedAt: s.started.UTC().Format(time.RFC3339), EndedAt: time.Now().UTC().Format(time.RFC3339), ExitCode: &code}
	s.mu.Unlock()
	a.mu.Lock()
	a.history = append(a.history, it)
	if len(a.history) > historyMax {
		a.history = a.history[len(a.history)-historyMax:]
	}
	a.mu.Unlock()
}

// historyPage returns ended sessions, newest first.
func (a *Agent) historyPage(id identity, offset, limit int) any {
	if limit <= 0 || limit > 200 {
		limit = 50
	}
	offset = max(offset, 0)
	a.mu.Lock()
	var mine []sessionItem
	for i := len(a.history) - 1; i >= 0; i-- {
		it := a.history[i]
		if id.owner() || it.UserID == id.user {
			mine = append(mine, it)
		}
	}
	a.mu.Unlock()
	page := []sessionItem{}
	if offset < len(mine) {
		page = mine[offset:min(len(mine), offset+limit)]
	}
	return map[string]any{"sessions": page, "total": len(mine)}
}

type dirEntry struct {
	Name  string `json:"name"`
	IsDir bool   `json:"is_dir"`
	Path  string `json:"path"`
}

// listDirs lists the directories under path, hidden ones skipped. When the
// last path component does not exist it filters its parent by that prefix
// (completion as the user types). "" and "~" are the home directory.
func listDirs(path string) ([]dirEntry, error) {
	home, _ := os.UserHomeDir()
	switch {
	case path == "" || path == "~":
		path = home
	case strings.HasPrefix(path, "~/"):
		path = filepath.Join(home, path[2:])
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(home, path)
	}
	dir, prefix := path, ""
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		dir, prefix = filepath.Dir(path), filepath.Base(path)
	}
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := []dirEntry{}
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) {
			continue
		}
		full := filepath.Join(dir, name)
		if !de.IsDir() {
			// Symlinks to directories count as directories.
			if st, err := os.Stat(full); err != nil || !st.IsDir() {
				continue
			}
		}
		out = append(out, dirEntry{Name: name, IsDir: true, Path: full})
	}
	return out, nil
}

// streamReplay answers audit.request: the session's replay buffer in
// tunnel.stream frames of at most 64 KiB ({"data": base64}), then a final
// {"done":true} with the outer done:true.
func (a *Agent) streamReplay(ctx context.Context, c *wp.Cipher, rid string, id identity, req tunnelRequest) {
	s := a.session(req.SessionID)
	if s == nil || !a.mayControl(id, s) {
		a.reply(ctx, c, rid, errorf("session not found"))
		return
	}
	if req.Kind != "" && req.Kind != "replay" {
		a.reply(ctx, c, rid, errorf("unsupported audit kind: "+req.Kind))
		return
	}
	s.mu.Lock()
	data := s.replay.snapshot()
	s.mu.Unlock()
	for len(data) > 0 {
		n := min(len(data), streamChunk)
		b, _ := json.Marshal(map[string]string{"data": base64.StdEncoding.EncodeToString(data[:n])})
		if err := a.send(ctx, wp.TunnelRes{Type: wp.TypeTunnelStream, RequestID: rid, Payload: c.Seal(b)}); err != nil {
			return
		}
		data = data[n:]
	}
	b, _ := json.Marshal(map[string]bool{"done": true})
	a.send(ctx, wp.TunnelRes{Type: wp.TypeTunnelStream, RequestID: rid, Payload: c.Seal(b), Done: true})
}
