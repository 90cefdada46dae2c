package ticket

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
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
