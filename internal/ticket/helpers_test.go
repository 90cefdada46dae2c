package ticket

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/needtool"
)

// Test API keys understood by testAuthorize.
const (
	keyGood    = "key-good"     // may mint anywhere
	keyNoScope = "key-no-scope" // lacks the tickets scope
	keyBroken  = "key-broken"   // the key store fails
)

func testAuthorize(r *http.Request, workspace string) error {
	switch bearer(r) {
	case keyGood:
		return nil
	case keyNoScope:
		return fmt.Errorf("%w: key lacks the tickets scope", ErrForbidden)
	case keyBroken:
		return errors.New("key store unavailable")
	}
	return ErrUnauthenticated
}

// lockedBuffer collects log output from concurrent handlers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// env is a relay behind a real loopback HTTP/1.1 server.
type env struct {
	t     testing.TB
	relay *Relay
	srv   *httptest.Server
	reg   *prometheus.Registry
	logs  *lockedBuffer
	dir   string

	mu      sync.Mutex
	minted  []string
	clockMu sync.Mutex
	offset  time.Duration // added to time.Now by the relay's clock
}

type envOption func(*Config, *httptest.Server)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, reg: prometheus.NewRegistry(), logs: &lockedBuffer{}, dir: t.TempDir()}
	cfg := Config{
		Authorize:     testAuthorize,
		SweepInterval: time.Hour, // tests that need the sweeper shorten it
		Now:           e.now,
	}
	srv := httptest.NewUnstartedServer(nil)
	for _, o := range opts {
		o(&cfg, srv)
	}
	logger := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, err := New(cfg, logger, e.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.relay = r
	srv.Config.Handler = r
	srv.Config.ErrorLog = nil
	srv.Start()
	e.srv = srv
	t.Cleanup(func() {
		// Close the relay first: it releases handlers still waiting for a
		// peer, which the server's Close would otherwise wait for.
		_ = r.Close()
		srv.CloseClientConnections()
		srv.Close()
		logs := e.logs.String()
		e.mu.Lock()
		defer e.mu.Unlock()
		for _, tk := range e.minted {
			if strings.Contains(logs, tk) || strings.Contains(logs, strings.TrimPrefix(tk, "rly_")) {
				t.Errorf("a ticket value appears in the logs")
			}
		}
	})
	return e
}

func withConfig(f func(*Config)) envOption {
	return func(c *Config, _ *httptest.Server) { f(c) }
}

func (e *env) now() time.Time {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	return time.Now().Add(e.offset)
}

// advance moves the relay's clock forward.
func (e *env) advance(d time.Duration) {
	e.clockMu.Lock()
	defer e.clockMu.Unlock()
	e.offset += d
}

func (e *env) url(tk string) string { return e.srv.URL + "/v1/relay/" + tk }

// mint mints a ticket in workspace ws1 through the Go API.
func (e *env) mint(req MintRequest) string {
	e.t.Helper()
	if req.WorkspaceID == "" {
		req.WorkspaceID = "ws1"
	}
	if req.SourceID == "" {
		req.SourceID = "exec-a"
	}
	if req.DestID == "" {
		req.DestID = "exec-b"
	}
	resp, err := e.relay.Mint(context.Background(), req)
	if err != nil {
		e.t.Fatalf("Mint: %v", err)
	}
	e.remember(resp.Ticket)
	return resp.Ticket
}

func (e *env) remember(tk string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.minted = append(e.minted, tk)
}

// state reports a ticket's claim state.
func (e *env) state(tk string) (exists, put, get, paired bool) {
	r := e.relay
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.tickets[tk]
	if t == nil {
		return false, false, false, false
	}
	return true, t.put != nil, t.getClaimed, t.paired
}

func (e *env) waitState(tk string, what string, cond func(exists, put, get, paired bool) bool) {
	e.t.Helper()
	waitFor(e.t, what, func() bool { return cond(e.state(tk)) })
}

func (e *env) waitPutClaimed(tk string) {
	e.t.Helper()
	e.waitState(tk, "PUT side claimed", func(_, put, _, _ bool) bool { return put })
}

func (e *env) waitGetClaimed(tk string) {
	e.t.Helper()
	e.waitState(tk, "GET side claimed", func(_, _, get, _ bool) bool { return get })
}

func (e *env) waitPaired(tk string) {
	e.t.Helper()
	e.waitState(tk, "paired", func(_, _, _, paired bool) bool { return paired })
}

func (e *env) waitGone(tk string) {
	e.t.Helper()
	e.waitState(tk, "ticket gone", func(exists, _, _, _ bool) bool { return !exists })
}

// waitFor polls cond; bounded so a broken relay fails instead of hanging.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// metric returns the value of a counter or gauge in the env's registry.
func (e *env) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	e.t.Fatalf("metric %s%v not found", name, labels)
	return 0
}

// --- data -------------------------------------------------------------

// writeRandomFile writes n pseudo-random bytes and returns the path and the
// hex SHA-256.
func writeRandomFile(t testing.TB, dir string, n int64) (string, string) {
	t.Helper()
	f, err := os.CreateTemp(dir, "in-*")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	rng := rand.NewChaCha8([32]byte{byte(n), byte(n >> 8), byte(n >> 16)})
	if _, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(rng, n)); err != nil {
		t.Fatal(err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t testing.TB, path string) (int64, string) {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		// curl does not create -o files for empty bodies.
		return 0, hex.EncodeToString(sha256.New().Sum(nil))
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// --- curl -------------------------------------------------------------

func needCurl(t testing.TB) {
	t.Helper()
	needtool.Path(t, "curl", "apt-get install curl")
}

// curlProc is a running curl.
type curlProc struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	stdin  io.WriteCloser // set when started with a pipe
}

// startCurl runs curl with args. stdin may be nil, an *os.File, or the
// special value pipeStdin to get a writable pipe in p.stdin.
func startCurl(t testing.TB, stdin any, args ...string) *curlProc {
	t.Helper()
	needCurl(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	p := &curlProc{done: make(chan struct{})}
	p.cmd = exec.CommandContext(ctx, "curl", append([]string{"-sS", "--no-progress-meter"}, args...)...)
	p.cmd.Stdout = &p.stdout
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	switch in := stdin.(type) {
	case nil:
	case *os.File:
		p.cmd.Stdin = in
	case pipeMarker:
		w, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = w
	default:
		t.Fatalf("bad stdin %T", stdin)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start curl: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		cancel()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

type pipeMarker struct{}

var pipeStdin = pipeMarker{}

// wait waits for curl to exit and returns its exit code.
func (p *curlProc) wait(t testing.TB) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("curl did not exit")
	}
	if p.err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	t.Fatalf("curl: %v", p.err)
	return -1
}

func (p *curlProc) kill() { _ = p.cmd.Process.Kill() }

// curlGet starts a downloading curl writing the body to out and headers (and
// trailers) to hdr.
func (e *env) curlGet(tk, out, hdr string, extra ...string) *curlProc {
	args := append([]string{"--fail", "-o", out, "-D", hdr, "-H", "Authorization: Bearer " + tk}, extra...)
	return startCurl(e.t, nil, append(args, e.url(tk))...)
}

// curlStatus runs curl and returns the HTTP status and body.
func (e *env) curlStatus(method, url, auth string, stdin any, extra ...string) (int, string) {
	e.t.Helper()
	body := filepath.Join(e.dir, fmt.Sprintf("resp-%d", rand.Int64()))
	args := []string{"-X", method, "-o", body, "-w", "%{http_code}"}
	if auth != "" {
		args = append(args, "-H", "Authorization: Bearer "+auth)
	}
	args = append(args, extra...)
	p := startCurl(e.t, stdin, append(args, url)...)
	if code := p.wait(e.t); code != 0 {
		e.t.Fatalf("curl %s exit %d: %s", method, code, p.stderr.String())
	}
	status, _ := strconv.Atoi(strings.TrimSpace(p.stdout.String()))
	b, _ := os.ReadFile(body)
	return status, string(b)
}

// curlPut starts an uploading curl (-T src, "-" for stdin) that records the
// response body in a file; finish it with putResult.
func (e *env) curlPut(tk, src string, stdin any, extra ...string) (*curlProc, string) {
	body := filepath.Join(e.dir, fmt.Sprintf("put-%d", rand.Int64()))
	args := append([]string{"-T", src, "-o", body, "-w", "%{http_code}", "-H", "Authorization: Bearer " + tk}, extra...)
	return startCurl(e.t, stdin, append(args, e.url(tk))...), body
}

func putResult(t testing.TB, p *curlProc, bodyFile string) (int, putBody) {
	t.Helper()
	if code := p.wait(t); code != 0 {
		t.Fatalf("PUT curl exit %d: %s", code, p.stderr.String())
	}
	status, _ := strconv.Atoi(strings.TrimSpace(p.stdout.String()))
	b, err := os.ReadFile(bodyFile)
	if err != nil {
		t.Fatal(err)
	}
	var pb putBody
	if err := json.Unmarshal(b, &pb); err != nil {
		t.Fatalf("PUT response %d %q: %v", status, b, err)
	}
	return status, pb
}

// readHeaders parses a curl -D file: response headers, then trailers.
func readHeaders(t testing.TB, path string) (status int, h http.Header) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h = http.Header{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if i == 0 {
			f := strings.Fields(line)
			if len(f) >= 2 {
				status, _ = strconv.Atoi(f[1])
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return status, h
}

func decodeJSON(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad JSON %q: %v", s, err)
	}
}

func wantError(t testing.TB, gotStatus int, body string, wantStatus int, wantMsg string) {
	t.Helper()
	var eb errBody
	decodeJSON(t, body, &eb)
	if gotStatus != wantStatus || eb.Error != wantMsg {
		t.Fatalf("got %d %q, want %d %q", gotStatus, eb.Error, wantStatus, wantMsg)
	}
}

// --- raw HTTP/1.1 client ----------------------------------------------

// rawClient speaks HTTP/1.1 by hand so a test can send a body that lies about
// its length, stalls, or stops, while reading the response concurrently.
type rawClient struct {
	t    testing.TB
	conn net.Conn
	resp chan rawResp
}

type rawResp struct {
	status int
	body   string
	err    error
}

func (e *env) rawPut(tk string, headers ...string) *rawClient {
	e.t.Helper()
	conn, err := net.DialTimeout("tcp", e.srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "PUT /v1/relay/%s HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer %s\r\n", tk, tk)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		e.t.Fatal(err)
	}
	c := &rawClient{t: e.t, conn: conn, resp: make(chan rawResp, 1)}
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			c.resp <- rawResp{err: err}
			return
		}
		body, err := io.ReadAll(resp.Body)
		c.resp <- rawResp{status: resp.StatusCode, body: string(body), err: err}
	}()
	return c
}

func (c *rawClient) write(p []byte) error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := c.conn.Write(p)
	return err
}

func (c *rawClient) writeChunk(p []byte) error {
	return c.write(fmt.Appendf(nil, "%x\r\n%s\r\n", len(p), p))
}

func (c *rawClient) response() (int, string) {
	c.t.Helper()
	select {
	case r := <-c.resp:
		if r.err != nil {
			c.t.Fatalf("raw response: %v", r.err)
		}
		return r.status, r.body
	case <-time.After(30 * time.Second):
		c.t.Fatalf("no response")
	}
	return 0, ""
}

func (c *rawClient) putResponse() (int, putBody) {
	c.t.Helper()
	status, body := c.response()
	var pb putBody
	decodeJSON(c.t, body, &pb)
	return status, pb
}
