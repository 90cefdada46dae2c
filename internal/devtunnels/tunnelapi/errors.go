package tunnelapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// apiError is an error answered to the client as ProblemDetails. Any other
// error reaching writeError is a server failure: logged, answered 500.
type apiError struct {
	status int
	detail string
	fields map[string][]string // validation errors by JSON field
}

func (e *apiError) Error() string {
	if len(e.fields) == 0 {
		return fmt.Sprintf("%d %s", e.status, e.detail)
	}
	return fmt.Sprintf("%d %s %v", e.status, e.detail, e.fields)
}

func notFound(detail string) *apiError {
	return &apiError{status: http.StatusNotFound, detail: detail}
}

func forbidden(detail string) *apiError {
	return &apiError{status: http.StatusForbidden, detail: detail}
}

func conflict(detail string) *apiError {
	return &apiError{status: http.StatusConflict, detail: detail}
}

// fieldErrors collects validation errors by field.
type fieldErrors map[string][]string

func (fe fieldErrors) add(field, format string, args ...any) {
	fe[field] = append(fe[field], fmt.Sprintf(format, args...))
}

// err returns nil if there are no errors, else a 400 naming the fields.
func (fe fieldErrors) err(what string) error {
	if len(fe) == 0 {
		return nil
	}
	names := make([]string, 0, len(fe))
	for f := range fe {
		names = append(names, f)
	}
	slices.Sort(names)
	return &apiError{
		status: http.StatusBadRequest,
		detail: fmt.Sprintf("invalid %s: %s", what, strings.Join(names, ", ")),
		fields: fe,
	}
}

func badField(field, format string, args ...any) error {
	fe := fieldErrors{}
	fe.add(field, format, args...)
	return fe.err("request")
}

// storeError maps the store's sentinels to client errors; anything else
// stays a server failure.
func storeError(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return notFound(what + " not found")
	case errors.Is(err, store.ErrExists):
		return conflict(what + " already exists")
	case errors.Is(err, store.ErrInvalid):
		// Validation above the store should make this unreachable; the
		// store's text names the offending value, never a secret.
		return &apiError{status: http.StatusBadRequest, detail: err.Error()}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (a *API) writeError(c *call, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, store.ErrUnavailable):
		// A database restart or outage: the client may retry.
		a.log.Warn("tunnel management request failed: database unavailable",
			"method", c.r.Method, "path", c.r.URL.Path, "principal", c.p.String(), "err", err)
		ae = &apiError{status: http.StatusServiceUnavailable, detail: "the relay's database is unavailable; retry later"}
		c.w.Header().Set("Retry-After", "5")
	default:
		a.log.Error("tunnel management request failed",
			"method", c.r.Method, "path", c.r.URL.Path, "principal", c.p.String(), "err", err)
		ae = &apiError{status: http.StatusInternalServerError, detail: "internal server error"}
	}
	if ae.status == http.StatusUnauthorized {
		c.w.Header().Set("WWW-Authenticate", "Tunnel, Bearer")
	}
	writeBody(c.w, ae.status, "application/problem+json", tunnelproto.ProblemDetails{
		Title:  http.StatusText(ae.status),
		Status: ae.status,
		Detail: ae.detail,
		Errors: ae.fields,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	writeBody(w, status, "application/json", v)
}

func writeBody(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a bug can get here: every value written is a plain struct.
		status, contentType = http.StatusInternalServerError, "application/problem+json"
		b = []byte(`{"title":"Internal Server Error","status":500,"detail":"encoding the response failed"}`)
	}
	h := w.Header()
	h.Set("Content-Type", contentType+"; charset=utf-8")
	// Responses may carry access tokens; nothing here is cacheable.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// writeEmpty answers 200 with no body (DELETE, events).
func writeEmpty(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}
