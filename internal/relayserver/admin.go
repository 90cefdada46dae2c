package relayserver

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/store"
)

// The admin API is warren's own (not Dev Tunnels'): operator API keys and
// signing key rotation. Only the admin key may call it.

// KeyInfo is an API key as the admin API shows it: never its hash.
type KeyInfo struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Created   time.Time  `json:"created"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// Key is the plaintext, present only in the answer to create.
	Key string `json:"key,omitempty"`
}

func keyInfo(k *store.APIKey) KeyInfo {
	return KeyInfo{ID: k.ID, Name: k.Name, Scopes: k.Scopes, Created: k.Created, RevokedAt: k.RevokedAt}
}

func (s *Server) adminRoutes() {
	s.mux.HandleFunc("POST /api/v1/keys", s.admin(s.createKey))
	s.mux.HandleFunc("GET /api/v1/keys", s.admin(s.listKeys))
	s.mux.HandleFunc("DELETE /api/v1/keys/{id}", s.admin(s.revokeKey))
	s.mux.HandleFunc("POST /api/v1/signing-keys/rotate", s.admin(s.rotateKeys))
	s.mux.HandleFunc("GET /api/v1/cluster", s.admin(s.clusterStatus))
}

// clusterStatus answers `relay-server cluster status`: the registry and
// what each node holds, read from the store by this node.
func (s *Server) clusterStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.member.Status(r.Context())
	if err != nil {
		s.log.Warn("cluster status: store failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "store unavailable")
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// admin lets only the admin key through.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.authn.Authenticate(r)
		if err != nil {
			writeError(w, http.StatusUnauthorized, "admin key required")
			return
		}
		if !p.Admin {
			writeError(w, http.StatusForbidden, "only the admin key may manage keys")
			return
		}
		h(w, r)
	}
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	if strings.TrimSpace(req.Name) == "" {
		writeError(w, http.StatusBadRequest, "name is required")
		return
	}
	plain, k, err := apikey.Generate(req.Name, req.Scopes, s.now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sk := auth.KeyToStore(k)
	if err := s.cfg.Store.CreateAPIKey(r.Context(), sk); err != nil {
		s.log.Error("create API key", "err", err)
		writeError(w, storeFailure(err), "could not store the key")
		return
	}
	info := keyInfo(sk)
	info.Key = plain
	s.log.Info("API key created", "key_id", k.ID, "name", k.Name, "scopes", strings.Join(k.Scopes, " "))
	writeJSON(w, http.StatusCreated, info)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.cfg.Store.ListAPIKeys(r.Context())
	if err != nil {
		s.log.Error("list API keys", "err", err)
		writeError(w, storeFailure(err), "could not list keys")
		return
	}
	out := make([]KeyInfo, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyInfo(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := s.cfg.Store.RevokeAPIKey(r.Context(), id, s.now())
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no API key "+id)
		return
	}
	if err != nil {
		s.log.Error("revoke API key", "err", err)
		writeError(w, storeFailure(err), "could not revoke the key")
		return
	}
	k, err := s.cfg.Store.GetAPIKey(r.Context(), id)
	if err != nil {
		writeError(w, storeFailure(err), "could not read the key back")
		return
	}
	s.log.Info("API key revoked", "key_id", id)
	writeJSON(w, http.StatusOK, keyInfo(k))
}

func (s *Server) rotateKeys(w http.ResponseWriter, r *http.Request) {
	k, err := rotateSigningKey(r.Context(), s.cfg.Store, s.tokens, s.now())
	if err != nil {
		s.log.Error("rotate signing key", "err", err)
		writeError(w, storeFailure(err), "rotation failed: "+err.Error())
		return
	}
	s.log.Info("signing key rotated", "kid", k.ID)
	writeJSON(w, http.StatusOK, map[string]any{"current": k.ID, "created": k.Created})
}

// storeFailure is the status of a request the store failed: 503 while the
// database is unreachable (the client may retry), else 500.
func storeFailure(err error) int {
	if errors.Is(err, store.ErrUnavailable) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
