package tunnelapi

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/warrenhq/warren/internal/auth"
	"github.com/warrenhq/warren/internal/auth/apikey"
	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/store"
)

// Token scopes each operation accepts (docs/protocols/devtunnels.md §2.1). A nil set means
// any scope of a token for the tunnel.
var (
	scopesRead       = []string{token.ScopeManage, token.ScopeManagePorts, token.ScopeHost, token.ScopeConnect}
	scopesPortsWrite = []string{token.ScopeManage, token.ScopeManagePorts, token.ScopeHost}
	scopesManage     = []string{token.ScopeManage}
	scopesHost       = []string{token.ScopeHost}
)

// authenticate sets c.p, or fails with 401 (500 if the key store failed).
func (a *API) authenticate(c *call) error {
	p, err := a.auth.Authenticate(c.r)
	switch {
	case err == nil && p != nil:
		c.p = p
		return nil
	case err == nil:
		return errors.New("authenticator returned no principal and no error")
	case errors.Is(err, token.ErrExpired):
		return &apiError{status: http.StatusUnauthorized, detail: "the access token has expired"}
	case errors.Is(err, auth.ErrNoCredentials):
		return &apiError{status: http.StatusUnauthorized, detail: `an Authorization header is required ("Tunnel <token>" or "Bearer <key>")`}
	case errors.Is(err, auth.ErrBadCredentials):
		// The cause (bad signature, unknown key, ...) stays out of the
		// answer: it would only help someone forging credentials.
		return &apiError{status: http.StatusUnauthorized, detail: "the credentials are invalid"}
	}
	return fmt.Errorf("authenticate: %w", err)
}

// operator reports whether c's caller acts for the operator.
func (c *call) operator() bool { return c.p.Operator(apikey.ScopeTunnels) }

// access authenticates c, resolves ref and checks that the caller may act on
// that tunnel with one of scopes. A token of another tunnel gets 403 even
// when ref names nothing, so tokens cannot probe for names; only callers
// that could see the tunnel get 404.
func (a *API) access(c *call, ref string, scopes []string) (*store.Tunnel, error) {
	if err := a.authenticate(c); err != nil {
		return nil, err
	}
	if err := c.mayUseTunnels(); err != nil {
		return nil, err
	}
	t, err := a.store.FindTunnel(c.r.Context(), ref)
	if errors.Is(err, store.ErrNotFound) {
		return nil, c.missing(ref)
	}
	if err != nil {
		return nil, fmt.Errorf("find tunnel %q: %w", ref, err)
	}
	if err := c.mayAct(t, scopes); err != nil {
		return nil, err
	}
	return t, nil
}

// missing is the answer when ref names no tunnel: 404 for the operator and
// for a token of that (deleted) tunnel, 403 for a token of another one.
func (c *call) missing(ref string) error {
	if c.operator() || (c.p.Tunnel != nil && ref == c.p.Tunnel.TunnelID) {
		return notFound(fmt.Sprintf("tunnel %q not found", ref))
	}
	return forbidden("the access token is for another tunnel")
}

// mayUseTunnels rejects callers that can never act on a tunnel: an operator
// API key without the tunnels scope.
func (c *call) mayUseTunnels() error {
	if c.operator() || c.p.Tunnel != nil {
		return nil
	}
	return forbidden(fmt.Sprintf("the API key lacks the %q scope", apikey.ScopeTunnels))
}

// mayAct checks that the caller may act on t with one of scopes.
func (c *call) mayAct(t *store.Tunnel, scopes []string) error {
	if c.operator() {
		return nil
	}
	if c.p.Tunnel == nil || c.p.Tunnel.TunnelID != t.ID {
		return forbidden("the access token is for another tunnel")
	}
	if !c.p.Tunnel.SameInstance(t.Created) {
		return &apiError{status: http.StatusUnauthorized, detail: staleToken(t.ID)}
	}
	if scopes != nil && !c.p.Tunnel.HasScope(scopes...) {
		return forbidden(fmt.Sprintf("the access token needs one of the scopes %s for this operation", strings.Join(scopes, ", ")))
	}
	return nil
}

// staleToken explains why a token of tunnel id does not work on it.
func staleToken(id string) string {
	return fmt.Sprintf("the access token was issued for an earlier tunnel %q, deleted since (or before tokens were bound to one tunnel instance); obtain a new token", id)
}

// tokenScopes parses the tokenScopes query parameters: repeated, or one
// value separated by commas or spaces. Duplicates are dropped.
func tokenScopes(q map[string][]string) ([]string, error) {
	var out []string
	fe := fieldErrors{}
	for _, v := range q["tokenScopes"] {
		for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			if !token.ValidScope(s) {
				fe.add("tokenScopes", "unknown scope %q", s)
				continue
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	if err := fe.err("tokenScopes"); err != nil {
		return nil, err
	}
	return out, nil
}

// mayGrant checks that the caller may obtain tokens for scopes: the operator
// and manage tokens any, other tokens only the scopes they hold.
func (c *call) mayGrant(scopes []string) error {
	if len(scopes) == 0 || c.operator() {
		return nil
	}
	if c.p.Tunnel == nil {
		return forbidden("only the operator or a tunnel token may obtain tokens")
	}
	if c.p.Tunnel.HasScope(token.ScopeManage) {
		return nil
	}
	for _, s := range scopes {
		if !c.p.Tunnel.HasScope(s) {
			return forbidden(fmt.Sprintf("the access token may not obtain a %q token", s))
		}
	}
	return nil
}

// issue mints one token per scope for tunnel t, bound to this instance of
// it. Tokens obtained with a tunnel token expire no later than that one,
// or a leaked token could renew itself forever; the operator's get the
// full TokenTTL.
func (a *API) issue(c *call, t *store.Tunnel, scopes []string) (map[string]string, error) {
	if len(scopes) == 0 {
		return nil, nil
	}
	g := token.Grant{TunnelID: t.ID, TunnelCreated: t.Created, TTL: a.tokenTTL}
	if c.p != nil && c.p.Tunnel != nil && !c.operator() {
		g.NotAfter = c.p.Tunnel.Expiry
	}
	out := make(map[string]string, len(scopes))
	for _, s := range scopes {
		g.Scopes = []string{s}
		tok, _, err := a.tokens.Issue(g)
		if errors.Is(err, token.ErrExpired) {
			return nil, &apiError{status: http.StatusUnauthorized, detail: "the access token expires too soon to obtain tokens with it; obtain new tokens with an API key"}
		}
		if err != nil {
			return nil, fmt.Errorf("issue %q token for tunnel %q: %w", s, t.ID, err)
		}
		out[s] = tok
	}
	return out, nil
}
