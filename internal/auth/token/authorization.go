package token

import "strings"

// Authorization schemes, as ParseAuthorization returns them.
const (
	SchemeTunnel = "Tunnel" // relay-issued tunnel token (this package)
	SchemeBearer = "Bearer" // operator API key (package apikey)
)

// ParseAuthorization splits an Authorization header value into its scheme
// and credential. It accepts "Tunnel <jwt>" and "Bearer <key>", matching the
// scheme case-insensitively (RFC 9110 §11.1; the Dev Tunnels SDKs send
// "Tunnel" or "tunnel") and returning it canonically as SchemeTunnel or
// SchemeBearer. Surrounding spaces and tabs are trimmed. ok is false for any
// other scheme, an empty credential, or a credential containing whitespace.
func ParseAuthorization(header string) (scheme, credential string, ok bool) {
	header = strings.Trim(header, " \t")
	i := strings.IndexAny(header, " \t")
	if i < 0 {
		return "", "", false
	}
	switch s := header[:i]; {
	case strings.EqualFold(s, SchemeTunnel):
		scheme = SchemeTunnel
	case strings.EqualFold(s, SchemeBearer):
		scheme = SchemeBearer
	default:
		return "", "", false
	}
	credential = strings.Trim(header[i:], " \t")
	if credential == "" || strings.ContainsAny(credential, " \t") {
		return "", "", false
	}
	return scheme, credential, true
}
