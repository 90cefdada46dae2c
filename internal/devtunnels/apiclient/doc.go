// Package apiclient is the one client of relay-server's HTTP APIs that
// warren's own programs use: the Dev Tunnels management API (package
// tunnelapi, routes under /tunnels) for tunnel-host, tunnel-client and
// probe, and relay-server's other JSON APIs (API keys, tickets, wing
// tokens) for the relay's admin CLI.
//
// A [Client] holds the base URL, the credential and an [*http.Client];
// every call takes a context, which is the only deadline a call has unless
// Config.HTTPClient sets a timeout. The credential is sent as
//
//	Authorization: Bearer <key>     an API key or the admin key (Config.Key)
//	Authorization: Tunnel <token>   a tunnel access token (Config.Token)
//
// Request and response bodies are the wire types of package tunnelproto.
// Every /tunnels call carries api-version=[tunnelproto.APIVersion].
//
// # Errors
//
// A call answered with a status other than 2xx returns a [*StatusError]
// with the status, the server's message (from its RFC 7807 ProblemDetails
// or {"error": …} body) and the start of the body. errors.Is matches it
// against [ErrUnauthorized] (401), [ErrForbidden] (403), [ErrNotFound]
// (404) and [ErrConflict] (409). A 2xx answer that is not the JSON expected
// wraps [ErrBadResponse]; a base URL that cannot make a request URL wraps
// [ErrInvalidURL] (nothing was sent). Transport errors are returned as the
// [*http.Client] reports them (a *url.Error, which names the method and
// URL).
//
// # Access tokens
//
// GET /tunnels/{id}?tokenScopes=… answers fresh tokens in accessTokens.
// A key of that map may be one scope or a space-separated list of scopes
// ("host connect"): the Dev Tunnels SDKs accept both, warren's relay emits
// one key per scope (see /work/shared/protocols/devtunnels.md §2.1). Read
// tokens with [AccessToken], never by indexing the map.
package apiclient
