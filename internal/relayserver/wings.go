package relayserver

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/wing/webterm"
	"github.com/warrenhq/warren/internal/wing/winghub"
	"github.com/warrenhq/warren/internal/wing/wingtoken"
)

// mountWings builds the wing hub and the token minting endpoint.
func (s *Server) mountWings(logger *slog.Logger) error {
	s.wingTok = &wingtoken.Issuer{Keys: s.tokens.Keys(), Issuer: s.cfg.PublicURL, Now: s.cfg.Now}
	hc := s.cfg.Wings
	hc.VerifyWing = func(tok string) (winghub.WingIdentity, error) {
		c, err := s.wingTok.Verify(tok, wingtoken.KindWing)
		if err != nil {
			return winghub.WingIdentity{}, err
		}
		return winghub.WingIdentity{UserID: c.UserID, WingID: c.WingID, Pub: c.Pub}, nil
	}
	hc.VerifyUser = func(tok string) (winghub.UserIdentity, error) {
		c, err := s.wingTok.Verify(tok, wingtoken.KindUser)
		if err != nil {
			return winghub.UserIdentity{}, err
		}
		return winghub.UserIdentity{UserID: c.UserID}, nil
	}
	if hc.Registerer == nil {
		hc.Registerer = s.cfg.Registry
	}
	hc.WingUp, hc.WingDown = s.wingUp, s.wingDown
	if hc.Owners == nil {
		// Wing id ownership survives relay restarts.
		hc.Owners = storeOwners{st: s.cfg.Store, now: s.cfg.Now}
	}
	if hc.Usage == nil {
		// Bandwidth usage survives relay restarts and adds up across nodes.
		hc.Usage = storeUsage{st: s.cfg.Store, now: s.cfg.Now}
	}
	hub, err := winghub.New(hc, logger.With("service", "wings"))
	if err != nil {
		return err
	}
	s.wings = hub
	s.wingMux = http.NewServeMux()
	hub.Register(s.wingMux)
	s.mux.Handle("GET /ws/wing", s.wingMux)
	s.mux.Handle("GET /health", s.wingMux)
	s.mux.HandleFunc("GET /ws/pty", s.serveWingUser)
	s.mux.HandleFunc("GET /ws/relay", s.serveWingUser)
	s.mux.HandleFunc("GET /api/app/wings", s.listWings)
	// ICE servers come from this node's config, the same on every node.
	s.mux.Handle("GET /api/app/ice", s.wingMux)
	s.mux.HandleFunc("POST /api/v1/wings/tokens", s.mintWingToken)
	// The browser terminal; the user token stays out of URLs (#token=).
	s.mux.Handle("GET /app/", webterm.Handler("/app/"))
	s.mux.Handle("GET /app", http.RedirectHandler("/app/", http.StatusMovedPermanently))
	return nil
}

// storeOwners keeps wing id owners in the relay's store.
type storeOwners struct {
	st  store.Store
	now func() time.Time
}

func (o storeOwners) ClaimWing(ctx context.Context, wingID, userID string) (string, error) {
	w, err := o.st.ClaimWing(ctx, &store.WingOwner{WingID: wingID, UserID: userID, Created: o.now()})
	if err != nil {
		return "", err
	}
	return w.UserID, nil
}

// storeUsage keeps wing bandwidth usage in the relay's store.
type storeUsage struct {
	st  store.Store
	now func() time.Time
}

func (u storeUsage) AddUsage(ctx context.Context, user, month string, delta int64) (int64, error) {
	return u.st.AddBandwidthUsage(ctx, user, month, delta, u.now())
}

func (u storeUsage) PruneUsage(ctx context.Context, before string) (int, error) {
	return u.st.DeleteBandwidthUsageBefore(ctx, before)
}

func (u storeUsage) ListUsage(ctx context.Context, month string) (map[string]int64, error) {
	list, err := u.st.ListBandwidthUsage(ctx, month)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(list))
	for _, x := range list {
		out[x.UserID] = x.Bytes
	}
	return out, nil
}

// WingTokenRequest is the body of POST /api/v1/wings/tokens.
type WingTokenRequest struct {
	Kind       string `json:"kind"`           // "wing" or "user"
	User       string `json:"user"`           // user id; the owner for a wing token
	Wing       string `json:"wing,omitempty"` // wing tokens: bind to this machine id
	TTLSeconds int64  `json:"ttl_seconds,omitempty"`
}

// WingTokenResponse answers it.
type WingTokenResponse struct {
	Token     string    `json:"token"`
	Kind      string    `json:"kind"`
	User      string    `json:"user"`
	Wing      string    `json:"wing,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// mintWingToken lets the admin key, and API keys with the wings scope,
// mint wing and user tokens. Default lifetime 365 days.
func (s *Server) mintWingToken(w http.ResponseWriter, r *http.Request) {
	p, err := s.authn.Authenticate(r)
	if err != nil {
		writeError(w, http.StatusUnauthorized, "admin key or an API key with the wings scope required")
		return
	}
	if !p.Operator(apikey.ScopeWings) {
		writeError(w, http.StatusForbidden, "key lacks the "+apikey.ScopeWings+" scope")
		return
	}
	var req WingTokenRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	ttl := wingtoken.MaxTTL
	if req.TTLSeconds < 0 {
		writeError(w, http.StatusBadRequest, "ttl_seconds must be positive")
		return
	}
	if req.TTLSeconds > 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	tok, exp, err := s.wingTok.Issue(wingtoken.Claims{Kind: req.Kind, UserID: req.User, WingID: req.Wing}, ttl)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.log.Info("wing token minted", "kind", req.Kind, "user", req.User, "wing", req.Wing, "by", p.String())
	writeJSON(w, http.StatusCreated, WingTokenResponse{Token: tok, Kind: req.Kind, User: req.User, Wing: req.Wing, ExpiresAt: exp})
}
