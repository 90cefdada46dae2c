package ticket

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

const (
	// mintBodyLimit bounds the mint request body; a valid one is ~200 bytes.
	mintBodyLimit = 64 << 10

	// drainGrace bounds how long the server may spend reading the rest of a
	// refused upload after the response went out. It gives the uploader time
	// to read our answer before the connection is torn down.
	drainGrace = 500 * time.Millisecond
)

func (r *Relay) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/tickets", r.handleMint)
	mux.HandleFunc("/v1/tickets", methodNotAllowed("POST"))
	mux.HandleFunc("PUT /v1/relay/{ticket}", r.handlePut)
	mux.HandleFunc("GET /v1/relay/{ticket}", r.handleGet) // also matches HEAD; refused there
	mux.HandleFunc("/v1/relay/{ticket}", methodNotAllowed("GET, PUT"))
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusNotFound, errBody{Error: "not found"})
	})
	return mux
}

// ServeHTTP serves POST /v1/tickets and PUT/GET /v1/relay/{ticket}.
func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

type errBody struct {
	Error string `json:"error"`
}

// putBody is the PUT response. Field order follows the spec's examples.
type putBody struct {
	Bytes  int64  `json:"bytes"`
	Status string `json:"status,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	Error  string `json:"error,omitempty"`
}

type mintBody struct {
	Ticket      string `json:"ticket"`
	UploadURL   string `json:"upload_url"`
	DownloadURL string `json:"download_url"`
	ExpiresAt   string `json:"expires_at"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}

func writeError(w http.ResponseWriter, err error) {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		e = &Error{Status: http.StatusInternalServerError, Msg: "internal error"}
	}
	writeJSON(w, e.Status, errBody{Error: e.Msg})
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSON(w, http.StatusMethodNotAllowed, errBody{Error: "method not allowed"})
	}
}

// bearer returns the token of an "Authorization: Bearer" header, or "".
func bearer(req *http.Request) string {
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(tok)
}

// ticketAuthorized reports whether the bearer equals the path ticket. The
// comparison is constant-time so the ticket cannot be guessed byte by byte.
func ticketAuthorized(req *http.Request, id string) bool {
	tok := bearer(req)
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(id)) == 1
}

// clearDeadlines removes the deadlines http.Server's ReadTimeout and
// WriteTimeout put on the request, so that a long wait or transfer is bounded
// by the TTL and the idle timeout instead. On HTTP/1.1 an expired read
// deadline would also cancel the request context mid-transfer.
func clearDeadlines(rc *http.ResponseController) {
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
}

func (r *Relay) handleMint(w http.ResponseWriter, req *http.Request) {
	// An absent key is refused before the body is looked at; a present one
	// is judged by Authorize once the workspace is known.
	if bearer(req) == "" {
		writeError(w, ErrUnauthenticated)
		return
	}
	mr, err := decodeMintRequest(http.MaxBytesReader(w, req.Body, mintBodyLimit))
	if err != nil {
		writeError(w, err)
		return
	}
	if err := r.cfg.Authorize(req, mr.WorkspaceID); err != nil {
		switch {
		case errors.Is(err, ErrUnauthenticated):
			writeJSON(w, http.StatusUnauthorized, errBody{Error: err.Error()})
		case errors.Is(err, ErrForbidden):
			writeJSON(w, http.StatusForbidden, errBody{Error: err.Error()})
		default:
			r.log.Error("ticket mint: authorize failed", "err", err)
			writeError(w, err)
		}
		return
	}
	resp, err := r.Mint(req.Context(), mr)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusCreated, mintBody{
		Ticket:      resp.Ticket,
		UploadURL:   resp.UploadURL,
		DownloadURL: resp.DownloadURL,
		ExpiresAt:   resp.ExpiresAt.UTC().Format(time.RFC3339),
	})
}

func (r *Relay) handlePut(w http.ResponseWriter, req *http.Request) {
	rc := http.NewResponseController(w)
	clearDeadlines(rc)
	id := req.PathValue("ticket")
	if !ticketAuthorized(req, id) {
		r.replyPut(w, req, rc, ErrUnauthorized.Status, errBody{Error: ErrUnauthorized.Msg})
		return
	}
	up := &upload{body: req.Body, length: req.ContentLength, rc: rc, done: make(chan result, 1)}
	t, err := r.claim(id, putSide, up, false)
	if err != nil {
		e, _ := errors.AsType[*Error](err)
		if errors.Is(err, ErrTooLarge) {
			r.replyPut(w, req, rc, e.Status, putBody{Bytes: t.maxBytes, Error: e.Msg})
		} else {
			r.replyPut(w, req, rc, e.Status, errBody{Error: e.Msg})
		}
		return
	}
	if err := r.waitPaired(req.Context(), t, putSide); err != nil {
		e, _ := errors.AsType[*Error](err)
		r.replyPut(w, req, rc, e.Status, errBody{Error: e.Msg})
		return
	}
	// Paired: the GET handler is reading req.Body now. This handler must
	// not return before it is done, so wait unconditionally; the copy is
	// bounded by the idle timeout and by Close.
	res := <-up.done
	if res.putErr == nil {
		writeJSON(w, http.StatusOK, putBody{Bytes: res.bytes, Status: "ok", SHA256: res.sum})
		return
	}
	r.replyPut(w, req, rc, res.putErr.Status, putBody{Bytes: res.bytes, Error: res.putErr.Msg})
}

// replyPut answers an upload that failed or was refused, whose body is
// therefore unread. The connection is closed after the reply (HTTP/1.x) so
// the server does not try to read the rest before answering, and the drain
// it attempts afterwards is cut short.
func (r *Relay) replyPut(w http.ResponseWriter, req *http.Request, rc *http.ResponseController, status int, body any) {
	if req.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
	writeJSON(w, status, body)
	_ = rc.SetReadDeadline(time.Now().Add(drainGrace))
}

func (r *Relay) handleGet(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodHead {
		// A HEAD would claim the GET side and then drop the body.
		methodNotAllowed("GET, PUT")(w, req)
		return
	}
	rc := http.NewResponseController(w)
	clearDeadlines(rc)
	id := req.PathValue("ticket")
	if !ticketAuthorized(req, id) {
		writeError(w, ErrUnauthorized)
		return
	}
	t, err := r.claim(id, getSide, nil, req.ProtoMajor == 1 && req.ProtoMinor == 0)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := r.waitPaired(req.Context(), t, getSide); err != nil {
		writeError(w, err)
		return
	}
	r.transfer(w, req, rc, t)
}
