// Package token issues and verifies the relay's tunnel access tokens and
// manages the keys that sign them.
//
// A tunnel access token is what the Dev Tunnels SDKs send as
// "Authorization: Tunnel <jwt>" on management calls and relay WebSocket
// upgrades (docs/protocols/devtunnels.md §2.1, §2.2). The real service
// issues them from its own identity system; warren's relay-server mints its
// own: three-part JWTs signed with HS256 under a relay secret, carrying
//
//	tunnelId   the tunnel the token is for
//	clusterId  always "" in warren
//	scp        space-separated scopes (create, manage, manage:ports, host,
//	           inspect, connect)
//	exp        expiry, unix seconds (TS/C# clients refuse expired tokens
//	           locally, so exp is always present)
//	iss        the relay's public base URL
//	iat, nbf   issue time
//	tunnelCreatedUs  creation time of the tunnel instance, unix
//	           microseconds: a tunnel deleted and created again under the
//	           same id is another instance and refuses the earlier one's
//	           tokens ([Claims.SameInstance]; callers check it once they
//	           have looked the tunnel up)
//
// and a "kid" JOSE header naming the signing key. The Go SDK treats tokens
// as opaque; only the relay has to understand them.
//
// # Keys and rotation
//
// A [Keyring] holds the relay's signing keys. The newest key that is not
// retired signs; every key still in the ring verifies, selected by kid. To
// rotate, call [Keyring.Rotate]: it adds a fresh key and retires the old
// ones, so tokens already handed out stay valid until they expire. Once no
// token signed by a retired key can still pass [Issuer.Verify], the key is
// dead weight; [Issuer.Prune] removes such keys (the cutoff follows from
// Config.MaxTTL and Config.Leeway). The package holds keys in memory only:
// the caller loads them from its store into [NewKeyring] and writes back
// [Keyring.Keys] after a change.
//
// # Verification
//
// [Issuer.Verify] accepts HS256 only, whatever the token's header says (so
// never "none", and never RS/ES tricks with an HMAC secret), checks the
// signature with the key named by kid, then exp/nbf/iat with a small leeway
// and iss against the configured issuer. Every failure matches exactly one of
// the sentinel errors with errors.Is; [ErrExpired] is kept apart because the
// relay answers it with 401 and a well-behaved host then refreshes its token.
// Checking that the token's tunnel and scopes fit the request is the
// caller's job ([Claims.TunnelID], [Claims.HasScope]).
//
// [ParseAuthorization] splits an Authorization header into the "Tunnel"
// (tunnel token) or "Bearer" (operator API key, package apikey) scheme and
// its credential.
package token
