package ticket

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// TestHappyPath: docs/protocols/ticket-relay.md §6.1 and §6.2. Both orders, each size, with a file upload
// (Content-Length passed through) and a pipe upload (chunked, digest trailer).
func TestHappyPath(t *testing.T) {
	needCurl(t)
	e := newEnv(t)
	sizes := []int64{0, 1, 32<<10 + 1, 50 << 20}
	for _, size := range sizes {
		in, sum := writeRandomFile(t, e.dir, size)
		for _, mode := range []string{"file", "pipe"} {
			for _, order := range []string{"put-first", "get-first"} {
				t.Run(fmt.Sprintf("%d/%s/%s", size, mode, order), func(t *testing.T) {
					tk := e.mint(MintRequest{})
					out := filepath.Join(e.dir, "out-"+tk[4:12])
					hdr := out + ".hdr"
					src, stdin := in, any(nil)
					if mode == "pipe" {
						f, err := os.Open(in)
						if err != nil {
							t.Fatal(err)
						}
						defer f.Close()
						src, stdin = "-", f
					}
					var get *curlProc
					if order == "get-first" {
						get = e.curlGet(tk, out, hdr)
						e.waitGetClaimed(tk)
					}
					put, putBodyFile := e.curlPut(tk, src, stdin)
					if order == "put-first" {
						e.waitPutClaimed(tk)
						get = e.curlGet(tk, out, hdr)
					}
					if code := get.wait(t); code != 0 {
						t.Fatalf("GET curl exit %d: %s", code, get.stderr.String())
					}
					status, pb := putResult(t, put, putBodyFile)
					if status != 200 || pb.Status != "ok" || pb.Bytes != size || pb.SHA256 != sum {
						t.Fatalf("PUT got %d %+v, want 200 ok bytes=%d sha256=%s", status, pb, size, sum)
					}
					n, gotSum := fileSHA(t, out)
					if n != size || gotSum != sum {
						t.Fatalf("GET body %d bytes sha %s, want %d %s", n, gotSum, size, sum)
					}
					hs, h := readHeaders(t, hdr)
					if hs != 200 || h.Get("Content-Type") != "application/octet-stream" || h.Get("X-Content-Type-Options") != "nosniff" {
						t.Fatalf("GET headers %d %v", hs, h)
					}
					switch mode {
					case "file":
						if got := h.Get("Content-Length"); got != strconv.FormatInt(size, 10) {
							t.Fatalf("Content-Length %q, want %d", got, size)
						}
					case "pipe":
						if h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "chunked" || h.Get("Trailer") != trailerSHA {
							t.Fatalf("want chunked with Trailer declared, got %v", h)
						}
						if got := h.Get(trailerSHA); got != sum {
							t.Fatalf("trailer %s = %q, want %s", trailerSHA, got, sum)
						}
					}
					e.waitGone(tk)
				})
			}
		}
	}
	if got := e.metric("warren_ticket_transfers_total", "outcome", "ok"); got != float64(len(sizes)*4) {
		t.Errorf("transfers ok = %v", got)
	}
	if got := e.metric("warren_ticket_active"); got != 0 {
		t.Errorf("active = %v", got)
	}
}
