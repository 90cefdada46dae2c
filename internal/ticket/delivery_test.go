package ticket

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// withH2C lets the test server speak HTTP/2 without TLS next to HTTP/1.1.
func withH2C(_ *Config, s *httptest.Server) {
	s.Config.Protocols = new(http.Protocols)
	s.Config.Protocols.SetHTTP1(true)
	s.Config.Protocols.SetUnencryptedHTTP2(true)
}

// TestDownloaderClosesAfterLastByte: an HTTP/2 downloader that got all of
// its Content-Length closes its stream without waiting for the trailer (curl
// does). That is a delivered transfer: the PUT gets 200, not "502 download
// side failed: client went away". The uploader (curl over HTTP/2 from a
// pipe, with a Content-Length header) sends its END_STREAM only once the
// downloader is gone, so the relay always sees the departure before the end
// of the upload: the order that made make test flaky on a loaded machine.
func TestDownloaderClosesAfterLastByte(t *testing.T) {
	needCurl(t)
	e := newEnv(t, withH2C)
	const size = 100<<10 + 7
	payload := bytes.Repeat([]byte("last-byte "), size/10+1)[:size]
	sum := sha256.Sum256(payload)
	tk := e.mint(MintRequest{})

	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	type getResult struct {
		n   int
		err error
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
		if resp.StatusCode != 200 || resp.ContentLength != size || resp.ProtoMajor != 2 {
			resp.Body.Close()
			got <- getResult{err: &Error{Msg: "GET " + resp.Proto + " " + resp.Status + " length " + strconv.FormatInt(resp.ContentLength, 10)}}
			return
		}
		b := make([]byte, size)
		n, err := io.ReadFull(resp.Body, b)
		if err == nil && !bytes.Equal(b, payload) {
			err = &Error{Msg: "GET body differs"}
		}
		// Every promised byte is here: leave without reading the end of
		// the stream (the trailer), which resets the stream.
		resp.Body.Close()
		got <- getResult{n, err}
	}()
	e.waitGetClaimed(tk)

	put, putBodyFile := e.curlPut(tk, "-", pipeStdin, "--http2-prior-knowledge", "-H", "Content-Length: "+strconv.Itoa(size))
	if _, err := put.stdin.Write(payload); err != nil {
		t.Fatal(err)
	}
	if g := <-got; g.err != nil || g.n != size {
		t.Fatalf("GET: %d bytes, %v", g.n, g.err)
	}
	// The relay has now seen (or will see) the downloader leave while the
	// upload is still open. Wait for its decision: either it ends the
	// transfer at once (the failure) or it logs that the downloader left
	// with every byte and keeps reading the upload to its end.
	const leftLine = "downloader left after receiving every byte"
	waitFor(t, "the relay to react to the downloader leaving", func() bool {
		exists, _, _, _ := e.state(tk)
		return !exists || strings.Contains(e.logs.String(), leftLine)
	})
	if exists, _, _, _ := e.state(tk); !exists {
		t.Fatalf("the transfer ended before its upload did:\n%s", e.logs.String())
	}
	_ = put.stdin.Close()
	if status, pb := putResult(t, put, putBodyFile); status != 200 || pb.Status != "ok" || pb.Bytes != size || pb.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("PUT %d %+v, want 200 ok with %d bytes", status, pb, size)
	}
	e.waitGone(tk)
	if n := e.metric("warren_ticket_transfers_total", "outcome", OutcomeOK); n != 1 {
		t.Fatalf("ok transfers = %v, want 1", n)
	}
}

// TestHTTP10StreamedRefused: HTTP/1.0 ends a body without a length by
// closing the connection, so an upload that breaks mid-stream would reach an
// HTTP/1.0 downloader as a clean, short file. When an HTTP/1.0 GET pairs
// with an upload that has no Content-Length, in either order, the transfer
// fails before any byte moves: the GET gets 505 saying why and the PUT gets
// 502. An upload with a Content-Length still reaches an HTTP/1.0 GET.
func TestHTTP10StreamedRefused(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	get10 := func(tk string) (*curlProc, string) {
		out := filepath.Join(e.dir, "get10-"+tk[4:12])
		return startCurl(t, nil, "--http1.0", "-o", out, "-w", "%{http_code}",
			"-H", "Authorization: Bearer "+tk, e.url(tk)), out
	}
	// check waits for the relay's decision, then checks both answers.
	check := func(t *testing.T, tk string, get *curlProc, getOut string, put *rawClient) {
		t.Helper()
		e.waitState(tk, "paired or ended", func(exists, _, _, paired bool) bool { return !exists || paired })
		if _, _, _, paired := e.state(tk); paired {
			// End the upload so the GET finishes, and show what it got.
			_ = put.write([]byte("0\r\n\r\n"))
			get.wait(t)
			t.Fatalf("an HTTP/1.0 GET was paired with a streamed upload: GET %s, %d bytes", get.stdout.String(), fileSize(getOut))
		}
		if code := get.wait(t); code != 0 {
			t.Fatalf("GET curl exit %d: %s", code, get.stderr.String())
		}
		body, _ := os.ReadFile(getOut)
		status, _ := strconv.Atoi(get.stdout.String())
		wantError(t, status, string(body), 505, ErrHTTP10Streamed.Msg)
		for _, want := range []string{"Content-Length", "HTTP/1.1", "proxy_http_version 1.1"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("GET error %s does not mention %q", body, want)
			}
		}
		status, pb := put.response()
		wantError(t, status, pb, 502, downloadFailed(http10Reason).Msg)
		e.waitGone(tk)
	}

	t.Run("put-first", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		put := e.rawPut(tk, "Transfer-Encoding: chunked")
		if err := put.writeChunk([]byte("streamed")); err != nil {
			t.Fatal(err)
		}
		e.waitPutClaimed(tk)
		get, out := get10(tk)
		check(t, tk, get, out, put)
	})

	t.Run("get-first", func(t *testing.T) {
		tk := e.mint(MintRequest{})
		get, out := get10(tk)
		e.waitGetClaimed(tk)
		put := e.rawPut(tk, "Transfer-Encoding: chunked")
		if err := put.writeChunk([]byte("streamed")); err != nil {
			t.Fatal(err)
		}
		check(t, tk, get, out, put)
	})

	t.Run("content-length", func(t *testing.T) {
		in, sum := writeRandomFile(t, e.dir, 200<<10)
		tk := e.mint(MintRequest{})
		out := filepath.Join(e.dir, "get10-cl")
		get := e.curlGet(tk, out, out+".hdr", "--http1.0")
		e.waitGetClaimed(tk)
		put, putBodyFile := e.curlPut(tk, in, nil)
		if code := get.wait(t); code != 0 {
			t.Fatalf("GET exit %d: %s", code, get.stderr.String())
		}
		if s, pb := putResult(t, put, putBodyFile); s != 200 || pb.SHA256 != sum {
			t.Fatalf("PUT %d %+v", s, pb)
		}
		if _, got := fileSHA(t, out); got != sum {
			t.Fatal("HTTP/1.0 GET body differs")
		}
	})
}

// lateFlush delays the relay's flush of the final bytes until the HTTP/2
// downloader has closed its stream, as a loaded machine may: the bytes
// reach the client (Write, then a flush of our own) and the client resets
// the stream before the relay's own Flush runs, which then reports the
// stream closed.
type lateFlush struct {
	http.ResponseWriter
	gone    <-chan bool // CloseNotify: the stream is closed
	size    int64
	written int64
}

func (f *lateFlush) Write(p []byte) (int, error) {
	n, err := f.ResponseWriter.Write(p)
	f.written += int64(n)
	if err == nil && f.written == f.size {
		err = http.NewResponseController(f.ResponseWriter).Flush()
	}
	return n, err
}

func (f *lateFlush) FlushError() error {
	if f.written == f.size {
		select {
		case <-f.gone:
		case <-time.After(15 * time.Second):
			return errors.New("test: the downloader never closed its stream")
		}
	}
	return http.NewResponseController(f.ResponseWriter).Flush()
}

func (f *lateFlush) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// TestDownloaderGoneBeforeLastFlush: the flake of make test on a loaded
// machine (PUT 502 "download side failed" while curl's GET exited 0 with all
// bytes), made deterministic: over HTTP/2 the downloader has every byte and
// has reset its stream before the relay's flush of the last write returns an
// error. That is a delivered transfer.
func TestDownloaderGoneBeforeLastFlush(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	const size = 100<<10 + 3
	in, sum := writeRandomFile(t, e.dir, size)
	want, _ := os.ReadFile(in)

	// A second HTTP/2 server on the same relay, whose GETs get lateFlush.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet {
			//lint:ignore SA1019 CloseNotify is the only signal of the stream's closing itself
			w = &lateFlush{ResponseWriter: w, gone: w.(http.CloseNotifier).CloseNotify(), size: size}
		}
		e.relay.ServeHTTP(w, req)
	}))
	withH2C(nil, srv)
	srv.Start()
	defer srv.Close()

	tk := e.mint(MintRequest{})
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	got := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", srv.URL+"/v1/relay/"+tk, nil)
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			got <- err
			return
		}
		b := make([]byte, size)
		_, err = io.ReadFull(resp.Body, b)
		if err == nil && (resp.ProtoMajor != 2 || !bytes.Equal(b, want)) {
			err = errors.New("GET: not HTTP/2, or the body differs")
		}
		resp.Body.Close() // every byte is here: reset the stream
		got <- err
	}()
	e.waitGetClaimed(tk)
	put, putBodyFile := e.curlPut(tk, in, nil)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if status, pb := putResult(t, put, putBodyFile); status != 200 || pb.Bytes != size || pb.SHA256 != sum {
		t.Fatalf("PUT %d %+v, want 200 ok with %d bytes", status, pb, size)
	}
}
