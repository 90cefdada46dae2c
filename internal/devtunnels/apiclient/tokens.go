package apiclient

import (
	"slices"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// AccessToken returns the token for scope in a tunnel's accessTokens, or
// "". A key may be a single scope or a space-separated list of scopes, as
// the Dev Tunnels SDKs read it; an exact key wins, then the first key in
// sorted order that lists scope, so the answer does not depend on map
// order.
func AccessToken(t *tunnelproto.Tunnel, scope string) string {
	if t == nil {
		return ""
	}
	if tok, ok := t.AccessTokens[scope]; ok {
		return tok
	}
	keys := make([]string, 0, len(t.AccessTokens))
	for k := range t.AccessTokens {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if slices.Contains(strings.Fields(k), scope) {
			return t.AccessTokens[k]
		}
	}
	return ""
}
