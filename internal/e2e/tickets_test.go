package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/needtool"
)

type mintOut struct {
	Ticket          string `json:"ticket"`
	UploadURL       string `json:"upload_url"`
	DownloadURL     string `json:"download_url"`
	ExpiresAt       string `json:"expires_at"`
	UploadCommand   string `json:"upload_command"`
	DownloadCommand string `json:"download_command"`
}

// TestTicketsMintAndCurl mints with the CLI and moves a file with the two
// curl lines it printed, as a user would paste them.
func TestTicketsMintAndCurl(t *testing.T) {
	needCurl(t)
	_, url := startRelay(t, "admin-k")
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, env, "relay-server", "tickets", "mint", "--server", url,
		"--workspace", "w", "--source", "a", "--dest", "b", "--ttl", "1m", "--max-bytes", "1MiB", "-o", "json")
	r.wantCode(t, 0, "mint -o json")
	var m mintOut
	decodeJSON(t, r.stdout, &m)
	if !strings.HasPrefix(m.Ticket, "rly_") || m.UploadURL != url+"/v1/relay/"+m.Ticket {
		t.Fatalf("mint output: %+v", m)
	}
	if exp, err := time.Parse(time.RFC3339, m.ExpiresAt); err != nil || time.Until(exp) > time.Minute+5*time.Second {
		t.Fatalf("expires_at %q does not reflect --ttl 1m", m.ExpiresAt)
	}

	payload := bytes.Repeat([]byte("warren"), 100_000)
	src := filepath.Join(dir, "src.bin")
	os.WriteFile(src, payload, 0o600)
	dst := filepath.Join(dir, "dst.bin")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	get := exec.CommandContext(ctx, "sh", "-c", strings.Replace(m.DownloadCommand, "FILE", dst, 1))
	var getErr bytes.Buffer
	get.Stderr = &getErr
	if err := get.Start(); err != nil {
		t.Fatal(err)
	}
	put, err := exec.CommandContext(ctx, "sh", "-c", strings.Replace(m.UploadCommand, "FILE", src, 1)).Output()
	if err != nil {
		t.Fatalf("upload: %v %s", err, put)
	}
	if err := get.Wait(); err != nil {
		t.Fatalf("download: %v %s", err, getErr.String())
	}
	got, _ := os.ReadFile(dst)
	sum := sha256.Sum256(payload)
	if !bytes.Equal(got, payload) || !strings.Contains(string(put), hex.EncodeToString(sum[:])) {
		t.Fatalf("transfer: got %d bytes, PUT said %s", len(got), put)
	}

	// Text output names the ticket and both commands.
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b")
	r.wantCode(t, 0, "mint text")
	for _, want := range []string{"ticket:   rly_", "upload:   curl", "download: curl"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mint text output lacks %q:\n%s", want, r.stdout)
		}
	}
}

// needCurl skips a test when curl is missing, except under CI=true or
// WARREN_REQUIRE_TOOLS=1: there a missing curl is a broken runner, and
// skipping would hide the interop tests.
func needCurl(t *testing.T) {
	t.Helper()
	needtool.Path(t, "curl", "apt-get install curl")
}

// curlProc is a curl running in the background.
type curlProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // nil unless started with a pipe
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

// startCurl runs curl -sS with args; with pipe, its stdin is p.stdin. The
// test's cleanup kills it (by its own process, never by name).
func startCurl(t *testing.T, pipe bool, args ...string) *curlProc {
	t.Helper()
	p := &curlProc{done: make(chan struct{})}
	p.cmd = exec.Command("curl", append([]string{"-sS", "--max-time", "60"}, args...)...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if pipe {
		w, err := p.cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = w
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *curlProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns curl's exit code, failing the test if it runs past timeout.
func (p *curlProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("curl %v still running after %s", p.cmd.Args, timeout)
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	} else if p.err != nil {
		t.Fatalf("curl: %v", p.err)
	}
	return 0
}

// TestTicketsHTTP10 drives relay-server with curl --http1.0 as the
// downloader (what nginx does by default towards its upstreams). HTTP/1.0
// ends a body without a length by closing the connection, so a streamed
// upload that dies would reach the downloader as a clean, truncated file
// (curl --fail exit 0). The relay refuses that pairing in either order
// before any byte moves: the GET gets 505 naming the cure, the PUT gets 502.
// An upload with a known size still reaches an HTTP/1.0 downloader.
func TestTicketsHTTP10(t *testing.T) {
	needCurl(t)
	d, url := startRelay(t, "admin-k", "--log-level", "debug")
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	mint := func(t *testing.T, ws string) mintOut {
		t.Helper()
		r := run(t, dir, env, "relay-server", "tickets", "mint", "--server", url,
			"--workspace", ws, "--source", "a", "--dest", "b", "-o", "json")
		r.wantCode(t, 0, "mint")
		var m mintOut
		decodeJSON(t, r.stdout, &m)
		return m
	}
	waiting := func(t *testing.T, side, ws string) {
		t.Helper()
		d.stderr.wait(t, regexpOf(`"msg":"ticket side waiting for its peer".*"side":"`+side+`","workspace":"`+ws+`"`), 20*time.Second)
	}
	relayed := func(t *testing.T) int64 {
		t.Helper()
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "warren_ticket_bytes_total "); ok {
				n, _ := strconv.ParseFloat(v, 64)
				return int64(n)
			}
		}
		return 0
	}
	get10 := func(t *testing.T, m mintOut, out string) *curlProc {
		return startCurl(t, false, "--http1.0", "--fail-with-body", "-o", out, "-w", "%{http_code}",
			"-H", "Authorization: Bearer "+m.Ticket, m.DownloadURL)
	}
	putStream := func(t *testing.T, m mintOut, out string) *curlProc {
		p := startCurl(t, true, "-T", "-", "-o", out, "-w", "%{http_code}",
			"-H", "Authorization: Bearer "+m.Ticket, m.UploadURL)
		if _, err := p.stdin.Write(bytes.Repeat([]byte("s"), 64<<10)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// refused checks that the HTTP/1.0 GET was refused with 505 and the
	// streamed PUT with 502. Before any assertion it tells the refusal from
	// the old behaviour, where bytes flow: then the upload is killed
	// mid-stream to show what the downloader makes of it.
	refused := func(t *testing.T, get, put *curlProc, getOut, putOut string, base int64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !get.exited() && relayed(t) < base+1 {
			if time.Now().After(deadline) {
				t.Fatal("neither an answer to the HTTP/1.0 GET nor bytes relayed")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if !get.exited() {
			put.cmd.Process.Kill()
			code := get.wait(t, 30*time.Second)
			got, _ := os.ReadFile(getOut)
			t.Fatalf("HTTP/1.0 GET of a streamed upload got %s; after the upload was killed curl --fail exited %d with %d bytes",
				get.stdout.String(), code, len(got))
		}
		body, _ := os.ReadFile(getOut)
		if code := get.wait(t, time.Second); code != 22 || get.stdout.String() != "505" ||
			!strings.Contains(string(body), "no Content-Length") || !strings.Contains(string(body), "proxy_http_version 1.1") {
			t.Fatalf("HTTP/1.0 GET: curl exit %d, status %s, body %s %s", code, get.stdout.String(), body, get.stderr.String())
		}
		put.stdin.Close()
		code := put.wait(t, 30*time.Second)
		pbody, _ := os.ReadFile(putOut)
		if put.stdout.String() != "502" || !strings.Contains(string(pbody), "download side failed: the downloader speaks HTTP/1.0") {
			t.Fatalf("streamed PUT: curl exit %d, status %s, body %s %s", code, put.stdout.String(), pbody, put.stderr.String())
		}
		if relayed(t) != base {
			t.Fatalf("bytes were relayed to a refused HTTP/1.0 GET")
		}
	}

	t.Run("get-first", func(t *testing.T) {
		m := mint(t, "h10-get-first")
		base := relayed(t)
		getOut, putOut := filepath.Join(dir, "g1"), filepath.Join(dir, "p1")
		get := get10(t, m, getOut)
		waiting(t, "GET", "h10-get-first")
		put := putStream(t, m, putOut)
		refused(t, get, put, getOut, putOut, base)
	})

	t.Run("put-first", func(t *testing.T) {
		m := mint(t, "h10-put-first")
		base := relayed(t)
		getOut, putOut := filepath.Join(dir, "g2"), filepath.Join(dir, "p2")
		put := putStream(t, m, putOut)
		waiting(t, "PUT", "h10-put-first")
		get := get10(t, m, getOut)
		refused(t, get, put, getOut, putOut, base)
	})

	t.Run("known-size", func(t *testing.T) {
		m := mint(t, "h10-known-size")
		payload := bytes.Repeat([]byte("http/1.0 "), 100_000)
		src, dst := filepath.Join(dir, "src.bin"), filepath.Join(dir, "dst.bin")
		os.WriteFile(src, payload, 0o600)
		get := get10(t, m, dst)
		waiting(t, "GET", "h10-known-size")
		put := startCurl(t, false, "--fail-with-body", "-T", src, "-H", "Authorization: Bearer "+m.Ticket, m.UploadURL)
		if code := put.wait(t, 30*time.Second); code != 0 {
			t.Fatalf("PUT: curl exit %d: %s %s", code, put.stdout.String(), put.stderr.String())
		}
		if code := get.wait(t, 30*time.Second); code != 0 || get.stdout.String() != "200" {
			t.Fatalf("HTTP/1.0 GET: curl exit %d, status %s: %s", code, get.stdout.String(), get.stderr.String())
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, payload) {
			t.Fatalf("HTTP/1.0 GET got %d bytes, want %d", len(got), len(payload))
		}
	})
}

func TestTicketsMintErrors(t *testing.T) {
	dir := t.TempDir()
	env := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k")
	r := run(t, dir, env, "relay-server", "tickets", "mint", "--server", "http://127.0.0.1:1", "--source", "a", "--dest", "b")
	r.wantCode(t, 2, "missing --workspace")
	if !strings.Contains(r.stderr, "workspace") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", "http://127.0.0.1:1",
		"--workspace", "w", "--source", "a", "--dest", "b", "--timeout", "5s")
	r.wantCode(t, 1, "relay down")
	if !strings.Contains(r.stderr, "cannot reach relay at http://127.0.0.1:1") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--workspace", "w", "--source", "a", "--dest", "b", "--max-bytes", "lots")
	r.wantCode(t, 2, "bad --max-bytes")
	_, url := startRelay(t, "admin-k")
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b", "--ttl", "1000h")
	r.wantCode(t, 1, "ttl over the relay's max")
	if !strings.Contains(r.stderr, "400") || !strings.Contains(r.stderr, "ttl_seconds must be between 1 and 86400") {
		t.Errorf("stderr: %s", r.stderr)
	}
	// A mint may not ask for more than tickets.max_bytes_limit (64GiB by
	// default), and the answer names the ceiling.
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b", "--max-bytes", "91TB")
	r.wantCode(t, 1, "max_bytes over the relay's default limit")
	if !strings.Contains(r.stderr, "max_bytes must be between 1 and 68719476736") {
		t.Errorf("stderr: %s", r.stderr)
	}
	cfg := filepath.Join(dir, "limits.yaml")
	os.WriteFile(cfg, []byte("tickets:\n  max_bytes: 1KiB\n  max_bytes_limit: 1MiB\n"), 0o600)
	_, url = startRelay(t, "admin-k", "-c", cfg)
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b", "--max-bytes", "2MiB")
	r.wantCode(t, 1, "max_bytes over a configured limit")
	if !strings.Contains(r.stderr, "max_bytes must be between 1 and 1048576") {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, env, "relay-server", "tickets", "mint", "--server", url, "--workspace", "w", "--source", "a", "--dest", "b", "--max-bytes", "1MiB")
	r.wantCode(t, 0, "max_bytes at the configured limit")
	r = run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k", "WARREN_RELAY_SERVER_TICKETS_MAX_BYTES_LIMIT=512"),
		"relay-server", "-c", cfg, "config", "validate")
	r.wantCode(t, 2, "max_bytes_limit below max_bytes")
	if !strings.Contains(r.stderr, "tickets.max_bytes_limit") || !strings.Contains(r.stderr, "must be at least tickets.max_bytes (1KiB)") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// TestSecondSignalStopsAtOnce: a drain held up by a running transfer is cut
// short by a second SIGTERM, with exit code 1.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	d, url := startRelay(t, "admin-k", "--shutdown-timeout", "1m")
	r := run(t, t.TempDir(), cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=admin-k"), "relay-server", "tickets", "mint",
		"--server", url, "--workspace", "w", "--source", "a", "--dest", "b", "-o", "json")
	r.wantCode(t, 0, "mint")
	var m mintOut
	decodeJSON(t, r.stdout, &m)

	// A transfer that stays open: the upload sends a little, then waits.
	pr, pw := io.Pipe()
	defer pw.Close()
	putReq, _ := http.NewRequest(http.MethodPut, m.UploadURL, pr)
	putReq.Header.Set("Authorization", "Bearer "+m.Ticket)
	go func() {
		if resp, err := http.DefaultClient.Do(putReq); err == nil {
			resp.Body.Close()
		}
	}()
	getReq, _ := http.NewRequest(http.MethodGet, m.DownloadURL, nil)
	getReq.Header.Set("Authorization", "Bearer "+m.Ticket)
	pw.Write([]byte("started"))
	resp, err := http.DefaultClient.Do(getReq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	d.cmd.Process.Signal(syscall.SIGTERM)
	d.stderr.wait(t, regexpOf(`"msg":"shutting down"`), 10*time.Second)
	d.cmd.Process.Signal(syscall.SIGTERM)
	if code := d.exitCode(t, 10*time.Second); code != 1 {
		t.Fatalf("exit %d after a second SIGTERM, want 1\n%s", code, d.stderr)
	}
	d.stderr.wait(t, regexpOf(`second terminated: stopping now`), time.Second)
}
