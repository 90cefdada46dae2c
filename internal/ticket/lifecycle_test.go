package ticket

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMetricsAndAudit: bytes are counted while they move, not at the end, and
// each end writes one audit line with stable keys.
func TestMetricsAndAudit(t *testing.T) {
	e := newEnv(t)
	tk := e.mint(MintRequest{WorkspaceID: "ws-m", SourceID: "src-m", DestID: "dst-m"})
	if got := e.metric("warren_ticket_active"); got != 1 {
		t.Fatalf("active = %v", got)
	}
	put := e.rawPut(tk, "Transfer-Encoding: chunked")
	e.waitPutClaimed(tk)

	// The GET's headers go out with the first relayed byte, so the client
	// runs concurrently with the upload.
	type getResult struct {
		body    []byte
		trailer http.Header
		err     error
	}
	got := make(chan getResult, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.url(tk), nil)
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			got <- getResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- getResult{b, resp.Trailer, err}
	}()

	data := bytes.Repeat([]byte("m"), 100<<10)
	if err := put.writeChunk(data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes counted mid-transfer", func() bool {
		return e.metric("warren_ticket_bytes_total") >= float64(len(data))
	})
	if exists, _, _, paired := e.state(tk); !exists || !paired {
		t.Fatal("transfer ended before the counter was read")
	}
	if err := put.write([]byte("0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	status, pb := put.putResponse()
	if status != 200 || pb.Bytes != int64(len(data)) {
		t.Fatalf("PUT %d %+v", status, pb)
	}
	g := <-got
	if g.err != nil || !bytes.Equal(g.body, data) {
		t.Fatalf("GET got %d bytes, %v", len(g.body), g.err)
	}
	if g.trailer.Get(trailerSHA) != pb.SHA256 {
		t.Fatalf("trailer %q, want %q", g.trailer.Get(trailerSHA), pb.SHA256)
	}
	if got := e.metric("warren_ticket_transfers_total", "outcome", "ok"); got != 1 {
		t.Errorf("ok = %v", got)
	}
	if got := e.metric("warren_ticket_active"); got != 0 {
		t.Errorf("active = %v", got)
	}
	for _, o := range outcomes {
		e.metric("warren_ticket_transfers_total", "outcome", o) // all present from the start
	}

	var audit map[string]any
	sc := bufio.NewScanner(strings.NewReader(e.logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "ticket relay ended" {
			if audit != nil {
				t.Fatal("more than one audit line for one transfer")
			}
			audit = line
		}
	}
	want := map[string]any{
		"workspace": "ws-m", "source": "src-m", "dest": "dst-m",
		"bytes": float64(len(data)), "sha256": pb.SHA256, "outcome": "ok", "err": "",
	}
	for k, v := range want {
		if audit[k] != v {
			t.Errorf("audit %s = %v, want %v (line %v)", k, audit[k], v, audit)
		}
	}
}

// TestClose: waiting sides get 503, running transfers are aborted, and the
// relay refuses everything afterwards.
func TestClose(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	waitingGet := e.mint(MintRequest{})
	waitingPut := e.mint(MintRequest{})
	running := e.mint(MintRequest{})
	unused := e.mint(MintRequest{})

	getBody := filepath.Join(e.dir, "wget")
	wget := startCurl(t, nil, "-o", getBody, "-w", "%{http_code}", "-H", "Authorization: Bearer "+waitingGet, e.url(waitingGet))
	wput := e.rawPut(waitingPut, "Content-Length: 5")
	out := filepath.Join(e.dir, "run-out")
	rget := e.curlGet(running, out, out+".hdr")
	rput := e.rawPut(running, "Transfer-Encoding: chunked")
	if err := rput.writeChunk(bytes.Repeat([]byte("r"), 64<<10)); err != nil {
		t.Fatal(err)
	}
	e.waitGetClaimed(waitingGet)
	e.waitPutClaimed(waitingPut)
	waitFor(t, "running transfer moved bytes", func() bool { return e.metric("warren_ticket_bytes_total") >= 64<<10 })

	if err := e.relay.Close(); err != nil {
		t.Fatal(err)
	}

	if code := wget.wait(t); code != 0 {
		t.Fatalf("waiting GET exit %d", code)
	}
	b, _ := os.ReadFile(getBody)
	wantError(t, atoi(wget.stdout.String()), string(b), 503, "relay shutting down")
	status, body := wput.response()
	wantError(t, status, body, 503, "relay shutting down")
	ps, pb := rput.putResponse()
	if ps != 503 || pb.Bytes != 64<<10 || pb.Error != "relay shutting down" {
		t.Fatalf("running PUT %d %+v", ps, pb)
	}
	if code := rget.wait(t); code != 18 {
		t.Fatalf("running GET exit %d, want 18", code)
	}

	status, body = e.curlStatus("GET", e.url(unused), unused, nil)
	wantError(t, status, body, 503, "relay shutting down")
	if _, err := e.relay.Mint(context.Background(), MintRequest{WorkspaceID: "w", SourceID: "s", DestID: "d"}); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Mint after Close: %v", err)
	}
	if err := e.relay.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := e.metric("warren_ticket_transfers_total", "outcome", "aborted"); got != 4 {
		t.Errorf("aborted = %v, want 4", got)
	}
	if got := e.metric("warren_ticket_active"); got != 0 {
		t.Errorf("active = %v", got)
	}
}

// TestDrain: a graceful stop tells waiting sides 503 at once, refuses new
// work, and lets a paired transfer finish cleanly.
func TestDrain(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	waitingGet := e.mint(MintRequest{})
	running := e.mint(MintRequest{})
	unused := e.mint(MintRequest{})

	getBody := filepath.Join(e.dir, "wget")
	wget := startCurl(t, nil, "-o", getBody, "-w", "%{http_code}", "-H", "Authorization: Bearer "+waitingGet, e.url(waitingGet))
	out := filepath.Join(e.dir, "run-out")
	rget := e.curlGet(running, out, out+".hdr")
	rput := e.rawPut(running, "Transfer-Encoding: chunked")
	first := bytes.Repeat([]byte("a"), 64<<10)
	if err := rput.writeChunk(first); err != nil {
		t.Fatal(err)
	}
	e.waitGetClaimed(waitingGet)
	waitFor(t, "running transfer moved bytes", func() bool { return e.metric("warren_ticket_bytes_total") >= 64<<10 })

	e.relay.Drain()

	if code := wget.wait(t); code != 0 {
		t.Fatalf("waiting GET exit %d", code)
	}
	b, _ := os.ReadFile(getBody)
	wantError(t, atoi(wget.stdout.String()), string(b), 503, "relay shutting down")
	status, body := e.curlStatus("GET", e.url(unused), unused, nil)
	wantError(t, status, body, 503, "relay shutting down")

	// The paired transfer is not cut: it finishes and both sides see success.
	second := bytes.Repeat([]byte("b"), 1000)
	if err := rput.writeChunk(second); err != nil {
		t.Fatal(err)
	}
	if err := rput.write([]byte("0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	ps, pb := rput.putResponse()
	if ps != 200 || pb.Bytes != int64(len(first)+len(second)) {
		t.Fatalf("running PUT %d %+v", ps, pb)
	}
	if code := rget.wait(t); code != 0 {
		t.Fatalf("running GET exit %d, want 0", code)
	}
	if got := fileSize(out); got != int64(len(first)+len(second)) {
		t.Fatalf("GET received %d bytes", got)
	}
	e.relay.Close()
}

// TestServerTimeoutsDoNotCutTransfers: the server's ReadTimeout and
// WriteTimeout are far shorter than both the pairing wait and the transfer;
// the relay clears them, so the transfer still succeeds.
func TestServerTimeoutsDoNotCutTransfers(t *testing.T) {
	needCurl(t)
	e := newEnv(t, func(_ *Config, s *httptest.Server) {
		s.Config.ReadTimeout = 200 * time.Millisecond
		s.Config.WriteTimeout = 200 * time.Millisecond
	})
	in, sum := writeRandomFile(t, e.dir, 1<<20)
	tk := e.mint(MintRequest{})
	put, putBodyFile := e.curlPut(tk, in, nil)
	e.waitPutClaimed(tk)
	time.Sleep(400 * time.Millisecond) // the PUT now waits longer than ReadTimeout
	out := filepath.Join(e.dir, "out")
	get := e.curlGet(tk, out, out+".hdr", "--limit-rate", "1M") // and the copy outlasts WriteTimeout
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET exit %d: %s", code, get.stderr.String())
	}
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v", s, pb)
	}
	if _, got := fileSHA(t, out); got != sum {
		t.Fatal("GET body differs")
	}
}

// TestHTTP2: over HTTP/2 the digest trailer comes even with a Content-Length,
// and an aborted download is a stream error (curl 92).
func TestHTTP2(t *testing.T) {
	needCurl(t)
	e := newEnv(t, func(_ *Config, s *httptest.Server) {
		s.Config.Protocols = new(http.Protocols)
		s.Config.Protocols.SetHTTP1(true)
		s.Config.Protocols.SetUnencryptedHTTP2(true)
	})
	h2 := "--http2-prior-knowledge"

	in, sum := writeRandomFile(t, e.dir, 100<<10)
	tk := e.mint(MintRequest{})
	out := filepath.Join(e.dir, "h2-out")
	get := e.curlGet(tk, out, out+".hdr", h2)
	e.waitGetClaimed(tk)
	put, putBodyFile := e.curlPut(tk, in, nil, h2)
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET exit %d: %s", code, get.stderr.String())
	}
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v", s, pb)
	}
	_, h := readHeaders(t, out+".hdr")
	if h.Get("Content-Length") != "102400" || h.Get("Trailer") != trailerSHA {
		t.Fatalf("h2 headers: %v", h)
	}
	if _, got := fileSHA(t, out); got != sum {
		t.Fatal("h2 GET body differs")
	}

	// curl 7.88 does not record HTTP/2 trailers, so read them with Go.
	tk = e.mint(MintRequest{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	type getResult struct {
		resp *http.Response
		body []byte
		err  error
	}
	got := make(chan getResult, 1)
	go func() {
		req, _ := http.NewRequest("GET", e.url(tk), nil)
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			got <- getResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- getResult{resp, b, err}
	}()
	e.waitGetClaimed(tk)
	put, putBodyFile = e.curlPut(tk, in, nil, h2)
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v", s, pb)
	}
	g := <-got
	if g.err != nil || g.resp.ProtoMajor != 2 || g.resp.ContentLength != 100<<10 || g.resp.Trailer.Get(trailerSHA) != sum {
		t.Fatalf("Go h2 GET: %v proto %d len %d trailer %v", g.err, g.resp.ProtoMajor, g.resp.ContentLength, g.resp.Trailer)
	}

	tk = e.mint(MintRequest{})
	get = e.curlGet(tk, out+"2", out+"2.hdr", h2)
	e.waitGetClaimed(tk)
	rput := e.rawPut(tk, "Content-Length: 1048576")
	if err := rput.write(bytes.Repeat([]byte("h"), 4096)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bytes relayed", func() bool { return fileSize(out+"2") > 0 || e.metric("warren_ticket_bytes_total") >= 100<<10+4096 })
	_ = rput.conn.Close()
	if code := get.wait(t); code != 92 {
		t.Fatalf("h2 GET exit %d, want 92: %s", code, get.stderr.String())
	}
}

// TestBoundedMemory: docs/protocols/ticket-relay.md §6.12 scaled to the test budget. While 50 MiB stream
// through (curl on both sides, so the only Go heap is the relay's), the heap
// never grows by anything near the payload: nothing is buffered beyond the
// copy buffer.
func TestBoundedMemory(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	const size = 50 << 20
	in, sum := writeRandomFile(t, e.dir, size)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc

	tk := e.mint(MintRequest{})
	out := filepath.Join(e.dir, "mem-out")
	get := e.curlGet(tk, out, out+".hdr", "--limit-rate", "100M")
	e.waitGetClaimed(tk)
	put, putBodyFile := e.curlPut(tk, in, nil)
	var peak uint64
	for done := false; !done; {
		select {
		case <-get.done:
			done = true
		case <-time.After(5 * time.Millisecond):
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapAlloc)
	}
	if code := get.wait(t); code != 0 {
		t.Fatalf("GET exit %d", code)
	}
	if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v", s, pb)
	}
	if growth := int64(peak) - int64(base); growth > 16<<20 {
		t.Fatalf("heap grew by %d MiB while relaying %d MiB", growth>>20, size>>20)
	} else {
		t.Logf("heap growth during a %d MiB transfer: %d KiB", size>>20, growth>>10)
	}
}
