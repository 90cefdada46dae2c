package turncontrol

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
	// Code is a machine-readable class: unauthorized, invalid, not_found,
	// conflict, internal.
	Code string `json:"code"`
}

// StartRequest is the body of POST /v1/sessions.
type StartRequest struct {
	Profile string `json:"profile"`
}

// Handler is the /v1 API. Every request must carry
// "Authorization: Bearer <Config.Token>".
func (c *Controller) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/profiles", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, c.Profiles()) })
	mux.HandleFunc("POST /v1/profiles", func(w http.ResponseWriter, r *http.Request) {
		p, err := DecodeProfile(r.Body)
		if err == nil {
			p, err = c.CreateProfile(p)
		}
		reply(w, 201, p, err)
	})
	mux.HandleFunc("GET /v1/profiles/{name}", func(w http.ResponseWriter, r *http.Request) {
		p, err := c.Profile(r.PathValue("name"))
		reply(w, 200, p, err)
	})
	mux.HandleFunc("DELETE /v1/profiles/{name}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 204, nil, c.DeleteProfile(r.PathValue("name")))
	})
	mux.HandleFunc("GET /v1/sessions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, c.Sessions()) })
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		var req StartRequest
		if err := decodeStrict(r, &req); err != nil {
			reply(w, 0, nil, err)
			return
		}
		v, err := c.Start(req.Profile)
		reply(w, 201, v, err)
	})
	mux.HandleFunc("GET /v1/sessions/{profile}", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.Session(r.PathValue("profile"))
		reply(w, 200, v, err)
	})
	mux.HandleFunc("POST /v1/sessions/{profile}/stop", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		v, err := c.Stop(ctx, r.PathValue("profile"))
		reply(w, 200, v, err)
	})
	mux.HandleFunc("GET /v1/challenges", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, c.Challenges()) })
	mux.HandleFunc("GET /v1/challenges/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, err := c.Challenge(r.PathValue("id"))
		reply(w, 200, v, err)
	})
	mux.HandleFunc("POST /v1/challenges/{id}/continue", func(w http.ResponseWriter, r *http.Request) {
		var ans turnprovider.ChallengeAnswer
		if err := decodeStrict(r, &ans); err != nil {
			reply(w, 0, nil, err)
			return
		}
		reply(w, 204, nil, c.Continue(r.PathValue("id"), ans))
	})
	mux.HandleFunc("POST /v1/challenges/{id}/cancel", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 204, nil, c.Cancel(r.PathValue("id")))
	})
	mux.HandleFunc("GET /v1/events", c.serveEvents)
	mux.HandleFunc("GET /v1/diagnostics", func(w http.ResponseWriter, r *http.Request) {
		b, err := c.Diagnostics()
		if err != nil {
			reply(w, 0, nil, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Disposition", `attachment; filename="tunnel-client-diagnostics.json"`)
		w.Write(b)
	})
	return c.authorize(mux)
}

// authorize lets through only requests bearing the token. The comparison
// takes the same time whatever the token's first wrong byte.
func (c *Controller) authorize(next http.Handler) http.Handler {
	want := []byte("Bearer " + c.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tunnel-client control"`)
			writeJSON(w, http.StatusUnauthorized, APIError{Error: "missing or wrong bearer token (see the control token file)", Code: "unauthorized"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveEvents streams the ring as NDJSON from ?after=<seq> (default 0:
// everything held). With ?follow=false it ends after the backlog;
// otherwise it waits for new events until the client goes away.
func (c *Controller) serveEvents(w http.ResponseWriter, r *http.Request) {
	var after uint64
	if s := r.URL.Query().Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			reply(w, 0, nil, fmt.Errorf("%w: after: %q is not a sequence number", ErrInvalidRequest, s))
			return
		}
		after = n
	}
	follow := true
	if s := r.URL.Query().Get("follow"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			reply(w, 0, nil, fmt.Errorf("%w: follow: %q is not a boolean", ErrInvalidRequest, s))
			return
		}
		follow = b
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	for {
		evs, lost, wait := c.ring.since(after)
		if lost > 0 {
			if enc.Encode(Event{Seq: after + lost, Time: time.Now().UTC(), Kind: EventGap, Lost: lost}) != nil {
				return
			}
		}
		for _, ev := range evs {
			if enc.Encode(ev) != nil {
				return
			}
			after = ev.Seq
		}
		if lost > 0 && len(evs) == 0 {
			after += lost
		}
		if flusher != nil {
			flusher.Flush()
		}
		if !follow {
			return
		}
		select {
		case <-wait:
		case <-r.Context().Done():
			return
		case <-c.ctx.Done():
			return
		}
	}
}

func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return nil
}

// reply writes v with status ok, or err's status and an APIError.
func reply(w http.ResponseWriter, ok int, v any, err error) {
	if err == nil {
		if v == nil {
			w.WriteHeader(ok)
			return
		}
		writeJSON(w, ok, v)
		return
	}
	status, code := http.StatusInternalServerError, "internal"
	switch {
	case errors.Is(err, ErrInvalidProfile), errors.Is(err, ErrInvalidRequest):
		status, code = http.StatusBadRequest, "invalid"
	case errors.Is(err, ErrNotFound):
		status, code = http.StatusNotFound, "not_found"
	case errors.Is(err, ErrConflict), overlay.StageOf(err) == overlay.StageLocalBind:
		status, code = http.StatusConflict, "conflict"
	}
	writeJSON(w, status, APIError{Error: err.Error(), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Serve answers the API on ln until ctx ends, then stops every session.
func (c *Controller) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Sessions first: that also ends the event streams (c.ctx), which
	// Shutdown would otherwise wait for.
	c.Close()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// CheckListen refuses a listen address that is not loopback: the API
// runs sessions and reveals what they do, so it is for this machine only.
func CheckListen(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port: %w", addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address: the control API listens on 127.0.0.1, ::1 or localhost only", addr)
	}
	return nil
}
