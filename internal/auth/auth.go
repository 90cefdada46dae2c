// Package auth decides who is calling relay-server's HTTP API: the operator
// (admin key), an operator API key with scopes, or the holder of a tunnel
// access token. Services then decide what that caller may do.
package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/store"
)

// Errors of Authenticate. ErrNoCredentials and ErrBadCredentials both mean
// 401; token.ErrExpired is wrapped in as well so callers can tell a client
// to refresh.
var (
	ErrNoCredentials  = errors.New("auth: no credentials")
	ErrBadCredentials = errors.New("auth: unknown, revoked or malformed credentials")
)

// Principal is an authenticated caller. Exactly one of its fields is set.
type Principal struct {
	Admin  bool          // the relay's admin key
	Key    *apikey.Key   // an operator API key
	Tunnel *token.Claims // a tunnel access token
}

// Operator reports whether p acts for the operator with scope: the admin
// key, or an API key holding scope.
func (p *Principal) Operator(scope string) bool {
	return p != nil && (p.Admin || (p.Key != nil && p.Key.RevokedAt == nil && p.Key.HasScope(scope)))
}

// TunnelScope reports whether p holds a tunnel token for tunnelID with any
// of scopes.
func (p *Principal) TunnelScope(tunnelID string, scopes ...string) bool {
	return p != nil && p.Tunnel != nil && p.Tunnel.TunnelID == tunnelID && p.Tunnel.HasScope(scopes...)
}

// String names the principal for logs, never with a secret.
func (p *Principal) String() string {
	switch {
	case p == nil:
		return "anonymous"
	case p.Admin:
		return "admin"
	case p.Key != nil:
		return "key:" + p.Key.ID
	case p.Tunnel != nil:
		return "tunnel:" + p.Tunnel.TunnelID
	}
	return "anonymous"
}

// KeyStore is what Authenticator needs from the store.
type KeyStore interface {
	GetAPIKey(ctx context.Context, id string) (*store.APIKey, error)
}

// Authenticator checks the Authorization header of a request.
type Authenticator struct {
	AdminKey string        // required; compared in constant time
	Keys     KeyStore      // operator API keys; nil disables them
	Tokens   *token.Issuer // tunnel tokens; nil disables them
}

// Authenticate returns the caller of r. Accepted: "Bearer <admin key>",
// "Bearer wrn_<id>_<secret>" (API key), "Tunnel <jwt>" and "Bearer <jwt>".
func (a *Authenticator) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	if strings.TrimSpace(h) == "" {
		return nil, ErrNoCredentials
	}
	scheme, cred, ok := token.ParseAuthorization(h)
	if !ok {
		return nil, fmt.Errorf("%w: Authorization is not \"Bearer <key>\" or \"Tunnel <token>\"", ErrBadCredentials)
	}
	if scheme == token.SchemeBearer {
		if a.AdminKey != "" && subtle.ConstantTimeCompare([]byte(cred), []byte(a.AdminKey)) == 1 {
			return &Principal{Admin: true}, nil
		}
		if strings.HasPrefix(cred, apikey.Prefix) {
			return a.apiKey(r.Context(), cred)
		}
		if strings.Count(cred, ".") != 2 {
			return nil, fmt.Errorf("%w: unknown key", ErrBadCredentials)
		}
	}
	if a.Tokens == nil {
		return nil, fmt.Errorf("%w: tunnel tokens are not accepted here", ErrBadCredentials)
	}
	claims, err := a.Tokens.Verify(cred)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	return &Principal{Tunnel: claims}, nil
}

func (a *Authenticator) apiKey(ctx context.Context, cred string) (*Principal, error) {
	if a.Keys == nil {
		return nil, fmt.Errorf("%w: API keys are not accepted here", ErrBadCredentials)
	}
	id, _, err := apikey.Parse(cred)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	sk, err := a.Keys.GetAPIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown API key", ErrBadCredentials)
	}
	if err != nil {
		return nil, fmt.Errorf("look up API key: %w", err)
	}
	k := KeyFromStore(sk)
	if err := k.Check(cred); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCredentials, err)
	}
	return &Principal{Key: &k}, nil
}

// KeyFromStore converts a stored key to the apikey form.
func KeyFromStore(k *store.APIKey) apikey.Key {
	return apikey.Key{ID: k.ID, Name: k.Name, Hash: k.Hash, Scopes: k.Scopes, Created: k.Created, RevokedAt: k.RevokedAt}
}

// KeyToStore converts an apikey.Key to its stored form.
func KeyToStore(k apikey.Key) *store.APIKey {
	return &store.APIKey{ID: k.ID, Name: k.Name, Hash: k.Hash, Scopes: k.Scopes, Created: k.Created, RevokedAt: k.RevokedAt}
}
