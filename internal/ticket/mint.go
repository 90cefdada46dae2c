package ticket

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strings"
	"time"
)

// MintRequest asks for a ticket. Zero TTL and MaxBytes mean the Config
// defaults.
type MintRequest struct {
	WorkspaceID string        // groups tickets for the per-workspace cap; required
	SourceID    string        // identity of the uploading side; required, audit only
	DestID      string        // identity of the downloading side; required, audit only
	TTL         time.Duration // pairing deadline; 0 = Config.DefaultTTL, else in (0, Config.MaxTTL]
	MaxBytes    int64         // upload limit; 0 = Config.DefaultMaxBytes, else in [1, Config.MaxBytesLimit]
}

// MintResponse describes a minted ticket. The URLs are paths relative to the
// relay-server's base URL.
type MintResponse struct {
	Ticket      string
	UploadURL   string
	DownloadURL string
	ExpiresAt   time.Time
}

// mintWire is the JSON body of POST /v1/tickets. Pointers tell an omitted
// optional field from an explicit zero, which is an error.
type mintWire struct {
	WorkspaceID *string `json:"workspace_id"`
	SourceID    *string `json:"source_id"`
	DestID      *string `json:"dest_id"`
	TTLSeconds  *int64  `json:"ttl_seconds"`
	MaxBytes    *int64  `json:"max_bytes"`
}

// decodeMintRequest parses a mint body. It checks the JSON shape and the
// config-independent rules; Relay.normalize checks the rest.
func decodeMintRequest(rd io.Reader) (MintRequest, error) {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	var w mintWire
	if err := dec.Decode(&w); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return MintRequest{}, &Error{Status: http.StatusRequestEntityTooLarge, Msg: "request body too large", kind: ErrBadRequest}
		}
		if errors.Is(err, io.EOF) {
			return MintRequest{}, badRequest("invalid JSON: empty body")
		}
		// The decoder's text names the offending field ("unknown field
		// \"x\"", "cannot unmarshal string into ... ttl_seconds"), which is
		// what a caller needs to fix the request.
		return MintRequest{}, badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return MintRequest{}, badRequest("invalid JSON: trailing data after object")
	}
	var req MintRequest
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{
		{"workspace_id", w.WorkspaceID, &req.WorkspaceID},
		{"source_id", w.SourceID, &req.SourceID},
		{"dest_id", w.DestID, &req.DestID},
	} {
		if f.src == nil || *f.src == "" {
			return MintRequest{}, badRequest("%s is required", f.name)
		}
		*f.dst = *f.src
	}
	if w.TTLSeconds != nil {
		s := *w.TTLSeconds
		switch {
		case s < 1:
			return MintRequest{}, badRequest("ttl_seconds must be a positive number of seconds")
		case s > math.MaxInt64/int64(time.Second):
			// Not representable, and far above any MaxTTL: let
			// normalize name the relay's ceiling.
			req.TTL = math.MaxInt64
		default:
			req.TTL = time.Duration(s) * time.Second
		}
	}
	if w.MaxBytes != nil {
		if *w.MaxBytes < 1 {
			return MintRequest{}, badRequest("max_bytes must be at least 1")
		}
		req.MaxBytes = *w.MaxBytes
	}
	return req, nil
}

// normalize validates req against the config and fills in defaults.
func (r *Relay) normalize(req MintRequest) (MintRequest, error) {
	switch {
	case req.WorkspaceID == "":
		return req, badRequest("workspace_id is required")
	case req.SourceID == "":
		return req, badRequest("source_id is required")
	case req.DestID == "":
		return req, badRequest("dest_id is required")
	case req.TTL < 0 || req.TTL > r.cfg.MaxTTL:
		return req, badRequest("ttl_seconds must be between 1 and %d (the relay's maximum)", int64(r.cfg.MaxTTL/time.Second))
	case req.MaxBytes < 0:
		return req, badRequest("max_bytes must be at least 1")
	case req.MaxBytes > r.cfg.MaxBytesLimit:
		return req, badRequest("max_bytes must be between 1 and %d (the relay's maximum)", r.cfg.MaxBytesLimit)
	}
	if req.TTL == 0 {
		req.TTL = r.cfg.DefaultTTL
	}
	if req.MaxBytes == 0 {
		req.MaxBytes = r.cfg.DefaultMaxBytes
	}
	return req, nil
}

// Mint creates a ticket. It does not authorize: the HTTP handler calls
// Config.Authorize first, and Go callers are trusted. Errors are *Error
// (400, 429, 503) or ctx's error.
func (r *Relay) Mint(ctx context.Context, req MintRequest) (MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return MintResponse{}, err
	}
	req, err := r.normalize(req)
	if err != nil {
		return MintResponse{}, err
	}
	id := newTicketID()
	if r.cfg.Minted != nil {
		if err := r.cfg.Minted(ctx, id); err != nil {
			r.log.Error("cannot record the new ticket's node; mint refused", "workspace", req.WorkspaceID, "err", err)
			return MintResponse{}, ErrUnavailable
		}
	}
	now := r.cfg.Now()
	t := &ticket{
		id:        id,
		workspace: req.WorkspaceID,
		source:    req.SourceID,
		dest:      req.DestID,
		expires:   now.Add(req.TTL),
		maxBytes:  req.MaxBytes,
		pairedc:   make(chan struct{}),
		endedc:    make(chan struct{}),
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		if r.cfg.Minted != nil && r.cfg.Ended != nil {
			r.cfg.Ended(id)
		}
		return MintResponse{}, ErrShuttingDown
	}
	var swept []ended
	if r.perWS[t.workspace] >= r.cfg.WorkspaceCap {
		// Expired tickets hold slots only until the sweeper runs; do not
		// make the caller wait for it.
		swept = r.sweepLocked(now)
	}
	full := r.perWS[t.workspace] >= r.cfg.WorkspaceCap
	if !full {
		r.tickets[id] = t
		r.perWS[t.workspace]++
		r.m.active.Inc()
	}
	r.mu.Unlock()
	r.report(swept)
	if r.cfg.Minted != nil && r.cfg.Ended != nil && full {
		r.cfg.Ended(id)
	}

	if full {
		return MintResponse{}, &Error{
			Status: ErrWorkspaceFull.Status,
			Msg:    "workspace has too many live tickets (limit " + itoa(int64(r.cfg.WorkspaceCap)) + ")",
			kind:   ErrWorkspaceFull,
		}
	}
	url := "/v1/relay/" + id
	return MintResponse{Ticket: id, UploadURL: url, DownloadURL: url, ExpiresAt: t.expires}, nil
}

// newTicketID returns "rly_" + unpadded base64url of 32 random bytes.
func newTicketID() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes instead)
	return "rly_" + base64.RawURLEncoding.EncodeToString(b[:])
}
