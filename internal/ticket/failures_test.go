package ticket

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPairingTimeout: docs/protocols/ticket-relay.md §6.3. The side that waits past the TTL gets 408 (the
// GET too: upstream answered it 200 with an empty body), and the ticket is
// gone afterwards.
func TestPairingTimeout(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	t.Run("GET", func(t *testing.T) {
		t.Parallel()
		tk := e.mint(MintRequest{TTL: 2 * time.Second}) // ticket-relay.md §6.3: ttl_seconds 2
		status, body := e.curlStatus("GET", e.url(tk), tk, nil)
		wantError(t, status, body, 408, "timed out waiting for PUT side")
		status, body = e.curlStatus("GET", e.url(tk), tk, nil)
		wantError(t, status, body, 410, "ticket not found or expired")
	})
	t.Run("PUT", func(t *testing.T) {
		t.Parallel()
		tk := e.mint(MintRequest{TTL: 2 * time.Second}) // ticket-relay.md §6.3: ttl_seconds 2
		in, _ := writeRandomFile(t, e.dir, 100)
		put, bodyFile := e.curlPut(tk, in, nil)
		status, pb := putResult(t, put, bodyFile)
		if status != 408 || pb.Error != "timed out waiting for GET side" {
			t.Fatalf("PUT got %d %+v", status, pb)
		}
		status, body := e.curlStatus("GET", e.url(tk), tk, nil)
		wantError(t, status, body, 410, "ticket not found or expired")
	})
}

// TestExpiryWithFakeClock: the sweeper ends expired tickets; a waiting side
// gets 408 and an unused ticket disappears, freeing its slot.
func TestExpiryWithFakeClock(t *testing.T) {
	needCurl(t)
	e := newEnv(t, withConfig(func(c *Config) { c.SweepInterval = 5 * time.Millisecond }))
	unused := e.mint(MintRequest{TTL: time.Minute})
	waiting := e.mint(MintRequest{TTL: time.Minute})
	body := filepath.Join(e.dir, "get-body")
	get := startCurl(t, nil, "-o", body, "-w", "%{http_code}", "-H", "Authorization: Bearer "+waiting, e.url(waiting))
	e.waitGetClaimed(waiting)
	e.advance(2 * time.Minute)
	e.waitGone(unused)
	if code := get.wait(t); code != 0 {
		t.Fatalf("curl exit %d", code)
	}
	b, _ := os.ReadFile(body)
	wantError(t, atoi(get.stdout.String()), string(b), 408, "timed out waiting for PUT side")
	if got := e.metric("warren_ticket_transfers_total", "outcome", "expired"); got != 1 {
		t.Errorf("expired = %v", got)
	}
	if got := e.metric("warren_ticket_active"); got != 0 {
		t.Errorf("active = %v", got)
	}
	status, rb := e.curlStatus("PUT", e.url(unused), unused, nil, "--data-binary", "x")
	wantError(t, status, rb, 410, "ticket not found or expired")
}

// TestUploadDiesMidStream: docs/protocols/ticket-relay.md §6.4. The downloader must see a broken transfer,
// never a clean end: curl exits 18 on HTTP/1.1.
func TestUploadDiesMidStream(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	chunk := bytes.Repeat([]byte("x"), 64<<10)

	t.Run("content-length", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		out := filepath.Join(e.dir, "cl-out")
		get := e.curlGet(tk, out, out+".hdr")
		e.waitGetClaimed(tk)
		put := e.rawPut(tk, "Content-Length: 10485760")
		for sent := 0; sent < 1<<20; sent += len(chunk) {
			if err := put.write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "1 MiB relayed", func() bool { return e.metric("warren_ticket_bytes_total") >= 1<<20 })
		_ = put.conn.Close()
		if code := get.wait(t); code != 18 {
			t.Fatalf("GET curl exit %d, want 18: %s", code, get.stderr.String())
		}
		e.waitGone(tk)
		if got := e.metric("warren_ticket_transfers_total", "outcome", "upload_failed"); got < 1 {
			t.Errorf("upload_failed = %v", got)
		}
	})

	t.Run("chunked", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		out := filepath.Join(e.dir, "chunked-out")
		get := e.curlGet(tk, out, out+".hdr")
		e.waitGetClaimed(tk)
		base := e.metric("warren_ticket_bytes_total")
		put, _ := e.curlPut(tk, "-", pipeStdin)
		for sent := 0; sent < 1<<20; sent += len(chunk) {
			if _, err := put.stdin.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, "1 MiB relayed", func() bool { return e.metric("warren_ticket_bytes_total") >= base+1<<20 })
		put.kill()
		if code := get.wait(t); code != 18 {
			t.Fatalf("GET curl exit %d, want 18: %s", code, get.stderr.String())
		}
		e.waitGone(tk)
	})

	t.Run("before-first-byte", func(t *testing.T) {
		// Nothing was forwarded, so the GET can still get a status: 502.
		tk := e.mint(MintRequest{})
		put := e.rawPut(tk, "Content-Length: 10")
		e.waitPutClaimed(tk)
		_ = put.conn.Close()
		status, body := e.curlStatus("GET", e.url(tk), tk, nil)
		wantError(t, status, body, 502, "upload side failed: unexpected EOF")
	})
}

// TestMaxBytesDeclared: docs/protocols/ticket-relay.md §6.5. Content-Length over max_bytes is refused at
// once, the waiting GET learns why, and the ticket is consumed.
func TestMaxBytesDeclared(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	in, _ := writeRandomFile(t, e.dir, 2000)

	tk := e.mint(MintRequest{MaxBytes: 1000})
	getBody := filepath.Join(e.dir, "get-413")
	get := startCurl(t, nil, "-o", getBody, "-w", "%{http_code}", "-H", "Authorization: Bearer "+tk, e.url(tk))
	e.waitGetClaimed(tk)
	put, putBodyFile := e.curlPut(tk, in, nil)
	status, pb := putResult(t, put, putBodyFile)
	if status != 413 || pb.Bytes != 1000 || pb.Error != "payload exceeds max_bytes (1000)" {
		t.Fatalf("PUT got %d %+v", status, pb)
	}
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET curl exit %d", code)
	}
	b, _ := os.ReadFile(getBody)
	wantError(t, atoi(get.stdout.String()), string(b), 502, "upload side failed: payload exceeds max_bytes (1000)")
	s, body := e.curlStatus("GET", e.url(tk), tk, nil)
	wantError(t, s, body, 410, "ticket not found or expired")

	t.Run("without-reading-body", func(t *testing.T) {
		// The headers alone earn the 413: no body byte is ever sent.
		tk := e.mint(MintRequest{MaxBytes: 1000})
		put := e.rawPut(tk, "Content-Length: 1073741824")
		status, pb := put.putResponse()
		if status != 413 || pb.Bytes != 1000 {
			t.Fatalf("got %d %+v", status, pb)
		}
		e.waitGone(tk)
	})
}

// TestMaxBytesStreamed: docs/protocols/ticket-relay.md §6.6. At most max_bytes reach the GET; the byte after
// is not forwarded, the PUT gets 413 and the GET is aborted.
func TestMaxBytesStreamed(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	in, _ := writeRandomFile(t, e.dir, 2000)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	tk := e.mint(MintRequest{MaxBytes: 1000})
	out := filepath.Join(e.dir, "out")
	get := e.curlGet(tk, out, out+".hdr")
	e.waitGetClaimed(tk)
	put, putBodyFile := e.curlPut(tk, "-", f)
	status, pb := putResult(t, put, putBodyFile)
	if status != 413 || pb.Bytes != 1000 || pb.Error != "payload exceeds max_bytes (1000)" {
		t.Fatalf("PUT got %d %+v", status, pb)
	}
	if code := get.wait(t); code == 0 {
		t.Fatalf("GET curl exit 0, want non-zero")
	}
	got, _ := os.ReadFile(out)
	want, _ := os.ReadFile(in)
	if !bytes.Equal(got, want[:1000]) {
		t.Fatalf("GET received %d bytes, want exactly the first 1000", len(got))
	}
	e.waitGone(tk)

	t.Run("exactly-max", func(t *testing.T) {
		// A body of exactly max_bytes is fine, streamed or declared.
		for _, src := range []string{"-", "file"} {
			tk := e.mint(MintRequest{MaxBytes: 1000})
			in1000, sum := writeRandomFile(t, e.dir, 1000)
			f, err := os.Open(in1000)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(e.dir, "exact-"+src)
			get := e.curlGet(tk, out, out+".hdr")
			e.waitGetClaimed(tk)
			arg := in1000
			if src == "-" {
				arg = "-"
			}
			put, putBodyFile := e.curlPut(tk, arg, f)
			status, pb := putResult(t, put, putBodyFile)
			f.Close()
			if status != 200 || pb.Bytes != 1000 || pb.SHA256 != sum {
				t.Fatalf("%s: PUT got %d %+v", src, status, pb)
			}
			if code := get.wait(t); code != 0 {
				t.Fatalf("%s: GET exit %d", src, code)
			}
		}
	})
}

// TestSingleUse: docs/protocols/ticket-relay.md §6.7. A second claim during a transfer gets 423; after the
// transfer every request gets 410.
func TestSingleUse(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	tk := e.mint(MintRequest{})
	out := filepath.Join(e.dir, "out")
	get := e.curlGet(tk, out, out+".hdr")
	put, putBodyFile := e.curlPut(tk, "-", pipeStdin)
	if _, err := put.stdin.Write(bytes.Repeat([]byte("a"), 4096)); err != nil {
		t.Fatal(err)
	}
	e.waitPaired(tk)

	small, _ := writeRandomFile(t, e.dir, 10)
	status, body := e.curlStatus("PUT", e.url(tk), tk, nil, "-T", small)
	wantError(t, status, body, 423, "PUT side already claimed")
	status, body = e.curlStatus("GET", e.url(tk), tk, nil)
	wantError(t, status, body, 423, "GET side already claimed")

	_ = put.stdin.Close()
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.Bytes != 4096 {
		t.Fatalf("PUT got %d %+v", s, pb)
	}
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET exit %d", code)
	}
	status, body = e.curlStatus("PUT", e.url(tk), tk, nil, "-T", small)
	wantError(t, status, body, 410, "ticket not found or expired")
	status, body = e.curlStatus("GET", e.url(tk), tk, nil)
	wantError(t, status, body, 410, "ticket not found or expired")
}

// TestDoubleClaimWhileWaiting: 423 also applies before pairing.
func TestDoubleClaimWhileWaiting(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	tk := e.mint(MintRequest{})
	get := startCurl(t, nil, "-o", os.DevNull, "-H", "Authorization: Bearer "+tk, e.url(tk))
	e.waitGetClaimed(tk)
	status, body := e.curlStatus("GET", e.url(tk), tk, nil)
	wantError(t, status, body, 423, "GET side already claimed")
	get.kill()
	get.wait(t)

	tk2 := e.mint(MintRequest{})
	put := e.rawPut(tk2, "Content-Length: 5")
	e.waitPutClaimed(tk2)
	status, body = e.curlStatus("PUT", e.url(tk2), tk2, nil, "--data-binary", "hello")
	wantError(t, status, body, 423, "PUT side already claimed")
	_ = put.conn.Close()
}

// TestRelayAuth: docs/protocols/ticket-relay.md §6.8 (relay side) and §6.9.
func TestRelayAuth(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	tk := e.mint(MintRequest{})
	other := e.mint(MintRequest{})
	for _, method := range []string{"PUT", "GET"} {
		for name, auth := range map[string]string{"missing": "", "other-ticket": other, "prefix": tk[:len(tk)-1]} {
			var extra []string
			if method == "PUT" {
				extra = []string{"--data-binary", "x"}
			}
			status, body := e.curlStatus(method, e.url(tk), auth, nil, extra...)
			if status != 401 || !strings.Contains(body, `"unauthorized"`) {
				t.Errorf("%s with %s bearer: %d %s", method, name, status, body)
			}
		}
	}
	// The failed attempts claimed nothing.
	if exists, put, get, _ := e.state(tk); !exists || put || get {
		t.Fatalf("ticket state after 401s: exists=%v put=%v get=%v", exists, put, get)
	}
	const unknown = "rly_doesnotexist"
	status, body := e.curlStatus("GET", e.url(unknown), unknown, nil)
	wantError(t, status, body, 410, "ticket not found or expired")
	status, body = e.curlStatus("PUT", e.url(unknown), unknown, nil, "--data-binary", "x")
	wantError(t, status, body, 410, "ticket not found or expired")
}

// TestIdleTimeout: docs/protocols/ticket-relay.md §6.11. Pair, move 1 KiB, stall: the PUT gets 504 with the
// bytes so far and the GET is aborted.
func TestIdleTimeout(t *testing.T) {
	needCurl(t)
	e := newEnv(t, withConfig(func(c *Config) { c.IdleTimeout = 500 * time.Millisecond }))

	t.Run("after-data", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		out := filepath.Join(e.dir, "idle-out")
		get := e.curlGet(tk, out, out+".hdr")
		e.waitGetClaimed(tk)
		put := e.rawPut(tk, "Transfer-Encoding: chunked")
		if err := put.writeChunk(bytes.Repeat([]byte("z"), 1024)); err != nil {
			t.Fatal(err)
		}
		status, pb := put.putResponse()
		if status != 504 || pb.Bytes != 1024 || pb.Error != "idle timeout" {
			t.Fatalf("PUT got %d %+v", status, pb)
		}
		if code := get.wait(t); code != 18 {
			t.Fatalf("GET exit %d, want 18", code)
		}
		if n := fileSize(out); n != 1024 {
			t.Fatalf("GET got %d bytes", n)
		}
		e.waitGone(tk)
		if got := e.metric("warren_ticket_transfers_total", "outcome", "idle_timeout"); got != 1 {
			t.Errorf("idle_timeout = %v", got)
		}
	})

	t.Run("curl-slow-pipe", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		out := filepath.Join(e.dir, "idle-pipe-out")
		get := e.curlGet(tk, out, out+".hdr")
		e.waitGetClaimed(tk)
		put, putBodyFile := e.curlPut(tk, "-", pipeStdin)
		if _, err := put.stdin.Write(bytes.Repeat([]byte("z"), 1024)); err != nil {
			t.Fatal(err)
		}
		if code := get.wait(t); code == 0 {
			t.Fatalf("GET exit 0, want non-zero")
		}
		// curl blocks reading its stdin, so it only notices once the pipe
		// closes: it then reports the 504 or a closed connection.
		_ = put.stdin.Close()
		code := put.wait(t)
		b, _ := os.ReadFile(putBodyFile)
		if code == 0 && !strings.Contains(put.stdout.String(), "504") {
			t.Fatalf("PUT curl exit 0 with %s %s", put.stdout.String(), b)
		}
		e.waitGone(tk)
	})

	t.Run("before-first-byte", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		put := e.rawPut(tk, "Transfer-Encoding: chunked")
		e.waitPutClaimed(tk)
		status, body := e.curlStatus("GET", e.url(tk), tk, nil)
		wantError(t, status, body, 502, "upload side failed: idle timeout")
		ps, pb := put.putResponse()
		if ps != 504 || pb.Bytes != 0 {
			t.Fatalf("PUT got %d %+v", ps, pb)
		}
	})
}

// TestDownloadClientGone: docs/protocols/ticket-relay.md §6.13. Kill the GET mid-stream: the PUT gets 502
// with the bytes so far and the ticket is gone.
func TestDownloadClientGone(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	const total = 50 << 20
	tk := e.mint(MintRequest{})
	out := filepath.Join(e.dir, "out")
	get := e.curlGet(tk, out, out+".hdr", "--limit-rate", "2M")
	e.waitGetClaimed(tk)
	put := e.rawPut(tk, "Content-Length: 52428800")
	go func() {
		chunk := bytes.Repeat([]byte("q"), 64<<10)
		for sent := 0; sent < total; sent += len(chunk) {
			if put.write(chunk) != nil {
				return
			}
		}
	}()
	waitFor(t, "GET received data", func() bool { return fileSize(out) >= 256<<10 })
	get.kill()
	status, pb := put.putResponse()
	if status != 502 || pb.Bytes <= 0 || pb.Bytes >= total || !strings.HasPrefix(pb.Error, "download side failed: ") {
		t.Fatalf("PUT got %d %+v", status, pb)
	}
	get.wait(t)
	s, body := e.curlStatus("GET", e.url(tk), tk, nil)
	wantError(t, s, body, 410, "ticket not found or expired")
	if got := e.metric("warren_ticket_transfers_total", "outcome", "download_failed"); got != 1 {
		t.Errorf("download_failed = %v", got)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range strings.TrimSpace(s) {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}
