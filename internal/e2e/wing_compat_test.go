package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// startStrippingRelay puts a relay in front of target that behaves like
// wingthing's: it rebuilds pty.start from its fixed fields, so warren's
// command field does not reach the wing. Everything else passes as is.
func startStrippingRelay(t *testing.T, target string) string {
	t.Helper()
	up, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(up)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") == "" {
			rp.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		upWS, _, err := websocket.Dial(ctx, "ws://"+up.Host+r.URL.RequestURI(),
			&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": r.Header.Values("Authorization")}})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer upWS.CloseNow()
		down, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer down.CloseNow()
		upWS.SetReadLimit(wp.MaxFrame)
		down.SetReadLimit(wp.MaxFrame)
		pctx, stop := context.WithCancel(r.Context())
		defer stop()
		pump := func(dst, src *websocket.Conn, rewrite bool) {
			defer stop()
			for {
				_, b, err := src.Read(pctx)
				if err != nil {
					return
				}
				if rewrite {
					var m map[string]any
					if json.Unmarshal(b, &m) == nil && m["type"] == wp.TypePTYStart {
						delete(m, "command")
						b, _ = json.Marshal(m)
					}
				}
				if dst.Write(pctx, websocket.MessageText, b) != nil {
					return
				}
			}
		}
		go pump(down, upWS, false)
		pump(upWS, down, true)
	}))
	t.Cleanup(func() { srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}

// TestWingAttachCommandDroppedByRelay: a relay that drops pty.start's
// command field (as wingthing's does) makes the wing start a plain shell.
// attach --command must notice (pty.started does not confirm the command),
// kill that session and fail at once with a message naming the cause,
// instead of leaving an interactive shell waiting for input.
func TestWingAttachCommandDroppedByRelay(t *testing.T) {
	e := startWingRelay(t)
	e.startWing(t, e.url, "box1")
	via := startStrippingRelay(t, e.url)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "wing"), "attach", "--relay", via, "--command", "echo ran-$((6*7))", "box1")
	cmd.Env = e.userEnv(t)
	// stdin stays open, as when a script runs attach from a terminal-less
	// job: a shell started instead of the command would wait on it.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	cmd.Stdin = pr
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	pr.Close()
	if ctx.Err() != nil {
		t.Fatalf("attach --command through a command-dropping relay still running after 30s; stderr %q", errb.String())
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if code != 1 || !strings.Contains(errb.String(), "command") || !strings.Contains(errb.String(), "relay") ||
		strings.Contains(out.String(), "ran-42") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 1 and a message about the relay dropping the command", code, out.String(), errb.String())
	}
	// The unwanted shell was killed, not left running on the wing.
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := run(t, t.TempDir(), e.userEnv(t), "wing", "sessions", "--relay", e.url, "box1", "-o", "json")
		r.wantCode(t, 0, "wing sessions")
		if !strings.Contains(r.stdout, `"session_id"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the shell started in place of the command is still running: %s", r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Directly through warren's relay the command runs.
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--command", "echo ran-$((6*7))", "box1")
	if r.code != 0 || !strings.Contains(r.stdout, "ran-42") {
		t.Fatalf("attach --command direct: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

// fakeAgentWing is a wing like wingthing's: it offers agents (claude,
// codex) and no shell, answers wing.info, refuses other agents with
// "unsupported agent: <name>", and runs "claude" as a program that prints
// one line and exits.
func fakeAgentWing(t *testing.T, relayURL, token, wingID string) {
	t.Helper()
	key, err := wp.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	ws, _, err := websocket.Dial(dctx, strings.Replace(relayURL, "http", "ws", 1)+"/ws/wing",
		&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ws.SetReadLimit(wp.MaxFrame)
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); ws.CloseNow(); <-done })
	agents := []string{"claude", "codex"}
	send := func(v any) {
		b, _ := json.Marshal(v)
		ws.Write(ctx, websocket.MessageText, b)
	}
	send(wp.Register{Type: wp.TypeWingRegister, WingID: wingID, Hostname: "agenthost", Platform: "linux", Version: "v0-fake",
		Agents: agents, Skills: []string{}, Labels: []string{}, Identities: []string{}, PublicKey: wp.PublicKeyString(key)})
	_, b, err := ws.Read(dctx)
	if err != nil || !strings.Contains(string(b), `"registered"`) {
		cancel()
		t.Fatalf("fake wing registration: %v %s", err, b)
	}
	go func() {
		defer close(done)
		for {
			_, b, err := ws.Read(ctx)
			if err != nil {
				return
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			str := func(k string) string { s, _ := m[k].(string); return s }
			switch m["type"] {
			case wp.TypeTunnelReq:
				c, err := wp.NewCipher(key, str("sender_pub"), wp.InfoTunnel)
				if err != nil {
					continue
				}
				var req struct{ Type string }
				if p, err := c.Open(str("payload")); err != nil || json.Unmarshal(p, &req) != nil {
					continue
				}
				var res any = map[string]any{"error": "unsupported: " + req.Type}
				if req.Type == "wing.info" {
					res = map[string]any{"hostname": "agenthost", "platform": "linux", "version": "v0-fake", "agents": agents,
						"projects": []any{}, "locked": false, "spectate": false, "allowed_count": 0}
				}
				p, _ := json.Marshal(res)
				send(wp.TunnelRes{Type: wp.TypeTunnelRes, RequestID: str("request_id"), Payload: c.Seal(p)})
			case wp.TypePTYStart:
				sid, agent := str("session_id"), str("agent")
				if agent != "claude" {
					send(wp.Exited{Type: wp.TypePTYExited, SessionID: sid, ExitCode: 1, Error: "unsupported agent: " + agent})
					continue
				}
				c, err := wp.NewCipher(key, str("public_key"), wp.InfoPTY)
				if err != nil {
					continue
				}
				send(wp.Started{Type: wp.TypePTYStarted, SessionID: sid, Agent: agent, PublicKey: wp.PublicKeyString(key)})
				send(wp.Output{Type: wp.TypePTYOutput, SessionID: sid, Data: c.Seal([]byte("hello from claude\r\n"))})
				send(wp.Exited{Type: wp.TypePTYExited, SessionID: sid, ExitCode: 0})
			}
		}
	}()
}

// TestWingAgentsOnlyWing: a wing that offers agents but no shell (a
// wingthing wing). attach without --agent fails and says which agents the
// wing offers and how to pick one; --agent runs one; wing info lists what
// the wing reports, not a shell it does not have.
func TestWingAgentsOnlyWing(t *testing.T) {
	e := startWingRelay(t)
	fakeAgentWing(t, e.url, e.wingTok, "agentbox")

	for _, args := range [][]string{{"agentbox"}, {"--command", "true", "agentbox"}} {
		r := run(t, t.TempDir(), e.userEnv(t), "wing", append([]string{"attach", "--relay", e.url}, args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, "claude, codex") || !strings.Contains(r.stderr, "--agent") {
			t.Fatalf("attach %v: exit %d, stderr %q; want a failure listing the agents and naming --agent", args, r.code, r.stderr)
		}
	}
	r := run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--agent", "claude", "agentbox")
	if r.code != 0 || !strings.Contains(r.stdout, "hello from claude") {
		t.Fatalf("attach --agent claude: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "info", "--relay", e.url, "agentbox")
	r.wantCode(t, 0, "wing info")
	if m := regexp.MustCompile(`(?m)^agents\s+(.*)$`).FindStringSubmatch(r.stdout); m == nil || strings.TrimSpace(m[1]) != "claude, codex" {
		t.Fatalf("wing info agents: %q; want exactly claude, codex", r.stdout)
	}
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "ls", "--relay", e.url, "-o", "json")
	r.wantCode(t, 0, "wing ls")
	var wings []struct {
		WingID string   `json:"wing_id"`
		Agents []string `json:"agents"`
	}
	decodeJSON(t, r.stdout, &wings)
	if len(wings) != 1 || strings.Join(wings[0].Agents, ",") != "claude,codex" {
		t.Fatalf("wing ls: %s", r.stdout)
	}

	// warren's own wing reports its shell, and attach picks it.
	e.startWing(t, e.url, "box2")
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "info", "--relay", e.url, "box2")
	if r.code != 0 || !regexp.MustCompile(`(?m)^agents\s+shell\s*$`).MatchString(r.stdout) {
		t.Fatalf("wing info of a warren wing: %d %q", r.code, r.stdout)
	}
	r = run(t, t.TempDir(), e.userEnv(t), "wing", "attach", "--relay", e.url, "--command", "echo sh-$((1+2))", "box2")
	if r.code != 0 || !strings.Contains(r.stdout, "sh-3") {
		t.Fatalf("attach --command on a warren wing: %d %q %q", r.code, r.stdout, r.stderr)
	}
}
