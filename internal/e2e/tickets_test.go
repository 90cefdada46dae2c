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
	"strings"
	"syscall"
	"testing"
	"time"
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
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
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
	if !strings.Contains(r.stderr, "400") {
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
