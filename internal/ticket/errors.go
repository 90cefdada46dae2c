package ticket

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"syscall"
)

// Error is a relay failure carrying the HTTP status and the message the wire
// spec assigns it. Msg is sent to the client verbatim as {"error":Msg}.
//
// The exported Err* values are sentinels; errors built for one request (for
// example "payload exceeds max_bytes (1000)") match their sentinel with
// errors.Is.
type Error struct {
	Status int
	Msg    string
	kind   *Error // sentinel this error is an instance of; nil for sentinels
}

func (e *Error) Error() string { return e.Msg }

// Is reports whether target is the sentinel e was derived from.
func (e *Error) Is(target error) bool { return e.kind != nil && target == error(e.kind) }

// Sentinels, one per case of the wire spec.
var (
	// Mint.
	ErrBadRequest      = &Error{Status: http.StatusBadRequest, Msg: "bad request"}
	ErrUnauthenticated = &Error{Status: http.StatusUnauthorized, Msg: "missing or unknown API key"}
	ErrForbidden       = &Error{Status: http.StatusForbidden, Msg: "forbidden"}
	ErrWorkspaceFull   = &Error{Status: http.StatusTooManyRequests, Msg: "workspace has too many live tickets"}

	// Upload and download.
	ErrUnauthorized   = &Error{Status: http.StatusUnauthorized, Msg: "unauthorized"}
	ErrNotFound       = &Error{Status: http.StatusGone, Msg: "ticket not found or expired"}
	ErrFinished       = &Error{Status: http.StatusGone, Msg: "relay already finished"}
	ErrPutClaimed     = &Error{Status: http.StatusLocked, Msg: "PUT side already claimed"}
	ErrGetClaimed     = &Error{Status: http.StatusLocked, Msg: "GET side already claimed"}
	ErrPutTimeout     = &Error{Status: http.StatusRequestTimeout, Msg: "timed out waiting for GET side"}
	ErrGetTimeout     = &Error{Status: http.StatusRequestTimeout, Msg: "timed out waiting for PUT side"}
	ErrTooLarge       = &Error{Status: http.StatusRequestEntityTooLarge, Msg: "payload exceeds max_bytes"}
	ErrUploadFailed   = &Error{Status: http.StatusBadGateway, Msg: "upload side failed"}
	ErrDownloadFailed = &Error{Status: http.StatusBadGateway, Msg: "download side failed"}
	ErrIdleTimeout    = &Error{Status: http.StatusGatewayTimeout, Msg: "idle timeout"}

	// Both.
	ErrShuttingDown = &Error{Status: http.StatusServiceUnavailable, Msg: "relay shutting down"}
	// ErrUnavailable: a clustered relay cannot record the ticket's node
	// (Config.Minted failed), so no other node could find it.
	ErrUnavailable = &Error{Status: http.StatusServiceUnavailable, Msg: "the relay cannot record tickets right now; retry later"}
)

// ErrHTTP10Streamed answers an HTTP/1.0 GET paired with an upload that has no
// Content-Length. Without a length an HTTP/1.0 body ends when the connection
// closes, so a transfer broken mid-stream would look complete to the
// downloader; the relay refuses instead. nginx proxies to its upstreams in
// HTTP/1.0 unless told otherwise, hence the hint.
var ErrHTTP10Streamed = &Error{
	Status: http.StatusHTTPVersionNotSupported,
	Msg: "this transfer has no Content-Length (the upload is streamed) and HTTP/1.0 cannot signal a truncated body; " +
		"download with HTTP/1.1 (behind nginx: proxy_http_version 1.1)",
}

// http10Reason is the PUT side's downloadFailed reason for ErrHTTP10Streamed.
const http10Reason = "the downloader speaks HTTP/1.0, which cannot receive an upload without Content-Length; " +
	"upload with a known size (curl -T FILE) or download with HTTP/1.1 (behind nginx: proxy_http_version 1.1)"

// StatusCode returns the HTTP status for err: its *Error status, or 500.
func StatusCode(err error) int {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Status
	}
	return http.StatusInternalServerError
}

func badRequest(format string, args ...any) *Error {
	return &Error{Status: ErrBadRequest.Status, Msg: fmt.Sprintf(format, args...), kind: ErrBadRequest}
}

func tooLarge(max int64) *Error {
	return &Error{Status: ErrTooLarge.Status, Msg: fmt.Sprintf("payload exceeds max_bytes (%d)", max), kind: ErrTooLarge}
}

// uploadFailed is what the GET side is told when the PUT side broke before the
// download's headers went out.
func uploadFailed(reason string) *Error {
	return &Error{Status: ErrUploadFailed.Status, Msg: "upload side failed: " + reason, kind: ErrUploadFailed}
}

// downloadFailed is what the PUT side is told when the GET client went away.
func downloadFailed(reason string) *Error {
	return &Error{Status: ErrDownloadFailed.Status, Msg: "download side failed: " + reason, kind: ErrDownloadFailed}
}

// uploadBroken is what the PUT side is told when its own body could not be
// read (usually the uploader is gone and never sees it). 400, because the
// request body was bad; the spec leaves this status open.
func uploadBroken(reason string) *Error {
	return &Error{Status: http.StatusBadRequest, Msg: "upload failed: " + reason, kind: ErrUploadFailed}
}

// reason turns an I/O error into a short, address-free phrase for clients.
func reason(err error) string {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "unexpected EOF"
	case errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return "connection closed"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "deadline exceeded"
	case errors.Is(err, http.ErrHandlerTimeout):
		return "handler timeout"
	}
	return err.Error()
}
