package apiclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

var (
	// ErrUnauthorized matches a 401: credentials missing, malformed,
	// unknown or expired.
	ErrUnauthorized = errors.New("apiclient: unauthorized")
	// ErrForbidden matches a 403: valid credentials that may not do this.
	ErrForbidden = errors.New("apiclient: forbidden")
	// ErrNotFound matches a 404.
	ErrNotFound = errors.New("apiclient: not found")
	// ErrConflict matches a 409: the resource exists already.
	ErrConflict = errors.New("apiclient: conflict")
	// ErrBadResponse is wrapped when a 2xx answer is not the JSON expected.
	ErrBadResponse = errors.New("apiclient: unexpected response")
	// ErrInvalidURL is matched when the base URL cannot make a request URL;
	// nothing was sent.
	ErrInvalidURL = errors.New("apiclient: invalid URL")
	// ErrThrottled matches a 429, 502 or 503: the relay is busy or not
	// reachable behind its proxy; retry, but not sooner than
	// ThrottledRetryDelay.
	ErrThrottled = errors.New("apiclient: throttled")
)

// ThrottledRetryDelay is the least wait before retrying after ErrThrottled
// (the Dev Tunnels SDKs' value).
const ThrottledRetryDelay = 6400 * time.Millisecond

// StatusError is an answer with a status other than 2xx, from the API or
// (built by the caller) from a relay WebSocket upgrade.
type StatusError struct {
	Op     string // what was attempted, e.g. "GET tunnel" or "relay upgrade"
	Status int
	// Message is the server's message: "title: detail" of a ProblemDetails
	// body, or the "error" of {"error": …}; "" if the body has neither.
	Message string
	// Body is the start of the response body (at most 1 KiB), trimmed.
	Body string
}

// Error reads "op: HTTP 404 Not Found: <start of the body>".
func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d %s", e.Op, e.Status, http.StatusText(e.Status))
	if b := truncate(e.Body, 200); b != "" {
		s += ": " + b
	}
	return s
}

// Is matches the status sentinels.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrThrottled:
		switch e.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable:
			return true
		}
	}
	return false
}

func newStatusError(op string, status int, body []byte) *StatusError {
	var m struct {
		Error  string `json:"error"`
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	_ = json.Unmarshal(body, &m) // a body that is not JSON has no message
	msg := m.Error
	if msg == "" {
		msg = m.Title
		if m.Detail != "" {
			msg += ": " + m.Detail
		}
	}
	return &StatusError{Op: op, Status: status, Message: msg, Body: truncate(strings.TrimSpace(string(body)), 1024)}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// urlError is a request URL that could not be built. Its text is the
// parser's, which names the URL.
type urlError struct{ err error }

func (e *urlError) Error() string        { return e.err.Error() }
func (e *urlError) Unwrap() error        { return e.err }
func (e *urlError) Is(target error) bool { return target == ErrInvalidURL }
