package ticket

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// copyBufSize is the relay's only buffer per transfer.
const copyBufSize = 32 << 10

// trailerSHA is the digest trailer of streamed downloads.
const trailerSHA = "X-Relay-Sha256"

var bufPool = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// transfer runs on the GET handler goroutine once t is paired. It reads the
// PUT body and writes the GET response itself, because only the goroutine
// serving a response can abort it (panic(http.ErrAbortHandler)) so that the
// downloader sees a broken transfer rather than a clean, truncated end.
func (r *Relay) transfer(w http.ResponseWriter, req *http.Request, rc *http.ResponseController, t *ticket) {
	up := t.put
	x := &xfer{start: time.Now(), abortc: make(chan struct{}), putRC: up.rc, getRC: rc}
	stop, watched := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watched)
		x.watch(stop, req.Context(), r.shutdown, r.cfg.IdleTimeout, func() {
			r.log.Debug("ticket download: downloader left after receiving every byte; reading the upload to its end",
				"workspace", t.workspace, "source", t.source, "dest", t.dest)
		})
	}()

	c := copier{r: r, w: w, rc: rc, req: req, t: t, x: x, h: sha256.New()}
	res := c.run()
	close(stop)
	<-watched
	if res.putErr == nil && c.trailer && x.aborted() {
		// The watchdog fired (idle, shutdown, or a streamed download's
		// client left) as the copy ended, before the response's final
		// frame (terminating chunk, trailer) went out: its deadlines break
		// that frame, so report its reason, not success. A downloader that
		// leaves after its whole Content-Length is not a reason (see
		// xfer.final).
		res.outcome, res.putErr, res.getErr = x.outcome, x.putErr, x.getErr
	}

	if res.putErr == nil {
		if !c.sent {
			c.sendHeaders() // empty upload
		}
		if c.trailer {
			// A declared trailer's value is set after the body.
			w.Header().Set(trailerSHA, res.sum)
		}
	}
	// End the ticket before either side is answered, so a client that
	// retries after seeing its response gets 410, never 423.
	r.finish(t, res)
	up.done <- res
	if res.putErr == nil {
		return // net/http ends the response (and sends the trailer)
	}
	if c.sent || res.getErr == nil {
		// Headers are out (or the downloader is gone): abort, so the
		// connection closes without a terminating chunk or short of its
		// Content-Length. net/http recovers this panic silently.
		panic(http.ErrAbortHandler)
	}
	// An abort put the write deadline in the past; this reply is small.
	_ = rc.SetWriteDeadline(time.Time{})
	writeError(w, res.getErr)
}

// copier is the state of one transfer's copy loop.
type copier struct {
	r       *Relay
	w       http.ResponseWriter
	rc      *http.ResponseController
	req     *http.Request
	t       *ticket
	x       *xfer
	h       hash.Hash
	sent    bool // response headers written
	trailer bool // the digest trailer was declared
}

func (c *copier) sendHeaders() {
	up := c.t.put
	h := c.w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if up.length >= 0 {
		h.Set("Content-Length", strconv.FormatInt(up.length, 10))
	}
	// HTTP/1.1 cannot carry trailers next to a Content-Length; there the
	// length is the integrity check.
	if up.length < 0 || c.req.ProtoMajor >= 2 {
		h.Set("Trailer", trailerSHA)
		c.trailer = true
	}
	c.w.WriteHeader(http.StatusOK)
	c.sent = true
}

// run copies until EOF, failure, or max_bytes, and returns the outcome.
// It reads at most one byte past max_bytes and never forwards it.
func (c *copier) run() result {
	bufp := bufPool.Get().(*[copyBufSize]byte)
	defer bufPool.Put(bufp)
	buf := bufp[:]
	max := c.t.maxBytes
	var n int64
	for {
		if c.x.aborted() {
			return c.x.result(n, c.h)
		}
		want := len(buf)
		if left := max - n; left < int64(want) {
			want = int(left) + 1 // one byte more tells "exactly M" from "over M"
		}
		k, rerr := c.t.put.body.Read(buf[:want])
		over := false
		if k > 0 {
			c.x.progress()
			if n+int64(k) > max {
				k, over = int(max-n), true
			}
		}
		if k > 0 {
			if !c.sent {
				c.sendHeaders()
			}
			if c.t.put.length >= 0 && n+int64(k) == c.t.put.length {
				// This write completes the declared length: once it
				// succeeds the downloader has every byte it was promised,
				// and may hang up before the trailer.
				c.x.final.Store(true)
			}
			c.h.Write(buf[:k])
			wn, werr := c.w.Write(buf[:k])
			if werr == nil {
				werr = c.rc.Flush()
			}
			if werr != nil && !c.x.aborted() && c.x.final.Load() && c.req.ProtoMajor >= 2 {
				// HTTP/2 hands the bytes to the connection's writer and
				// then reports the stream's state: a downloader that
				// took its last bytes and reset the stream (or closed
				// the connection) before this goroutine looked gives
				// the same error as one that vanished just before. The
				// relay cannot tell them apart and counts the transfer
				// delivered; the second downloader sees a body short of
				// its Content-Length.
				wn, werr = k, nil
				c.r.log.Debug("ticket download: downloader left as its last bytes were written; counted as delivered",
					"workspace", c.t.workspace, "source", c.t.source, "dest", c.t.dest)
			}
			n += int64(wn)
			c.r.m.bytes.Add(float64(wn))
			if werr != nil {
				if c.x.aborted() {
					return c.x.result(n, c.h)
				}
				return c.fail(n, OutcomeDownloadFailed, downloadFailed(reason(werr)), nil)
			}
			c.x.progress()
		}
		if over {
			return c.fail(n, OutcomeTooLarge, tooLarge(max), uploadFailed(tooLarge(max).Msg))
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			return result{bytes: n, sum: hex.EncodeToString(c.h.Sum(nil)), outcome: OutcomeOK}
		case c.x.aborted():
			return c.x.result(n, c.h)
		default:
			// Includes a body shorter than its Content-Length, which
			// net/http reports as io.ErrUnexpectedEOF.
			why := reason(rerr)
			return c.fail(n, OutcomeUploadFailed, uploadBroken(why), uploadFailed(why))
		}
	}
}

func (c *copier) fail(n int64, outcome string, putErr, getErr *Error) result {
	return result{bytes: n, sum: hex.EncodeToString(c.h.Sum(nil)), outcome: outcome, putErr: putErr, getErr: getErr}
}

// xfer is the watchdog state of one transfer. An abort records why and then
// puts the PUT's read deadline and the GET's write deadline in the past, which
// unblocks the copy loop wherever it waits.
type xfer struct {
	start time.Time
	last  atomic.Int64 // time.Since(start) at the latest progress, in ns

	// final is set just before the write that completes a declared
	// Content-Length. From then on the downloader leaving is not a
	// failure: if it left before that write got through, the write itself
	// fails and the copy loop reports it (except on HTTP/2, where that
	// cannot be told apart; see copier.run); if after, it has every byte
	// (an HTTP/2 client may reset its stream instead of waiting for the
	// trailer). The copy then reads the upload to its end as usual.
	final atomic.Bool

	putRC, getRC *http.ResponseController

	once    sync.Once
	abortc  chan struct{} // closed by abort; the fields below are set before
	outcome string
	putErr  *Error
	getErr  *Error
}

func (x *xfer) progress() { x.last.Store(int64(time.Since(x.start))) }

func (x *xfer) aborted() bool {
	select {
	case <-x.abortc:
		return true
	default:
		return false
	}
}

func (x *xfer) abort(outcome string, putErr, getErr *Error) {
	x.once.Do(func() {
		x.outcome, x.putErr, x.getErr = outcome, putErr, getErr
		close(x.abortc)
		past := time.Unix(1, 0)
		_ = x.putRC.SetReadDeadline(past)
		_ = x.getRC.SetWriteDeadline(past)
	})
}

// result is the transfer's result after an abort; only valid once aborted.
func (x *xfer) result(n int64, h hash.Hash) result {
	return result{bytes: n, sum: hex.EncodeToString(h.Sum(nil)), outcome: x.outcome, putErr: x.putErr, getErr: x.getErr}
}

// watch aborts the transfer when no byte has moved for idle, when the
// downloader's request ends (it went away) short of its Content-Length, or
// when the relay closes. leftWithAll is called when the downloader leaves
// after the final write began (see xfer.final).
func (x *xfer) watch(stop <-chan struct{}, getCtx context.Context, shutdown <-chan struct{}, idle time.Duration, leftWithAll func()) {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	getDone := getCtx.Done()
	for {
		select {
		case <-stop:
			return
		case <-getDone:
			if x.final.Load() {
				getDone = nil // keep watching idle and shutdown
				leftWithAll()
				continue
			}
			x.abort(OutcomeDownloadFailed, downloadFailed("client went away"), nil)
			return
		case <-shutdown:
			x.abort(OutcomeAborted, ErrShuttingDown, ErrShuttingDown)
			return
		case <-timer.C:
			quiet := time.Since(x.start) - time.Duration(x.last.Load())
			if quiet >= idle {
				x.abort(OutcomeIdleTimeout, ErrIdleTimeout, uploadFailed("idle timeout"))
				return
			}
			timer.Reset(idle - quiet)
		}
	}
}
