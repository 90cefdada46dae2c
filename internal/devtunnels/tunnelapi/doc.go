// Package tunnelapi is relay-server's Dev Tunnels management API: the subset
// of the Microsoft Dev Tunnels REST API that the official SDKs (Go v0.1.28
// first) use to create tunnels and ports, register a host endpoint and mint
// tunnel access tokens. See docs/protocols/devtunnels.md §2.1–§2.2.
//
// [API] is an [http.Handler]. relay-server mounts it on "/tunnels",
// "/tunnels/" and "/clusters/": the SDKs overwrite the URL path, so the
// routes live at the URL root. The package keeps no state of its own; all of
// it is in the [store.Store].
//
// # Routes
//
// Every request needs the query parameter api-version=2023-09-27-preview,
// else 400. {id} is resolved as a tunnelId, then a name, then "name.domain".
//
//	GET    /tunnels                          list (operator only)                   200
//	GET    /tunnels/{id}                     get                                    200
//	PUT    /tunnels/{id}                     create or update (see below)           200
//	DELETE /tunnels/{id}                     delete with ports and endpoints        200
//	PUT    /tunnels/{id}/endpoints/{eid}     register a host endpoint               200
//	DELETE /tunnels/{id}/endpoints/{eid}     unregister it (404 if absent)          200
//	GET    /tunnels/{id}/ports               {"value":[…],"nextLink":""}            200
//	GET    /tunnels/{id}/ports/{n}           one port                               200
//	PUT    /tunnels/{id}/ports/{n}           create or update a port                200
//	DELETE /tunnels/{id}/ports/{n}           delete a port (404 if absent)          200
//	POST   /tunnels/{id}/events              telemetry, accepted and dropped        200
//	GET    /clusters/recommendations         always 404: there are no clusters      404
//
// Successful writes answer 200, creates included: the Go SDK accepts any
// status up to 300, but 200 is what every client takes. DELETE and events
// answer 200 with an empty body. Errors are RFC 7807 ProblemDetails
// ("application/problem+json") whose title is the HTTP status text; a
// validation error names the bad field in "errors". Other statuses: 401
// (missing, malformed, unknown or expired credentials), 403 (valid
// credentials that may not do this), 404, 405 (with Allow), 409, 413 (body
// over [MaxBodyBytes]), 500.
//
// GET /tunnels answers the by-region list the SDKs parse:
// {"value":[{"regionName":"local","clusterId":"","value":[tunnel…]}],"nextLink":""}
// (see [devtunnels.TunnelListByRegionResponse]); a flat {"value":[tunnel…]} would be
// read by the Go SDK as an empty list.
//
// # Who may do what
//
// The operator (the admin key, or an API key with scope "tunnels") may do
// everything. A tunnel token (Authorization: Tunnel <jwt>, or Bearer <jwt>)
// only acts on its own tunnel, and needs one of these scopes:
//
//	get tunnel, list/get ports    manage, manage:ports, host, connect
//	update/delete tunnel          manage
//	put/delete endpoint           host
//	put/delete port               manage, manage:ports, host
//	post events                   any
//
// Creating a tunnel and listing tunnels are for the operator only: a token
// cannot exist before its tunnel. A token of another tunnel gets 403, also
// when {id} names no tunnel at all, so tokens cannot probe for tunnel names;
// the operator, and a token whose own tunnel is gone, get 404.
//
// # Tokens
//
// tokenScopes (repeated, or one comma- or space-separated value) on
// GET and PUT /tunnels/{id} puts a fresh token per scope in accessTokens,
// one key per scope, valid for Config.TokenTTL. The operator and a "manage"
// token may ask for any scope; another token only for scopes it holds
// (which lets a host or client renew its own token while it is valid).
// Asking for more is 403, an unknown scope 400. accessTokens sent in a body
// are ignored: tokens are never stored. A token obtained with a token
// expires no later than the one presented, so a leaked token cannot keep
// itself alive; only the operator's credentials reset the clock.
//
// Tokens carry the creation time of their tunnel: once a tunnel is deleted,
// a new tunnel with the same id answers its predecessor's tokens with 401.
//
// # PUT semantics
//
// PUT /tunnels/{id} with "If-None-Match: *" (or the SDK's misspelt
// "If-Not-Match: *") only creates (409 if the tunnel exists); with
// "If-Match: *" it only updates (404 if missing); with neither it creates or
// updates. Both headers at once is 400. The Go SDK v0.1.28 in fact never
// sends either header (it writes them into TunnelRequestOptions
// .AdditionalHeaders, which it never reads), so its CreateTunnel on an
// existing tunnel is an update and its CreateTunnelPort on an existing port
// is an update.
//
// An update applies only the fields present in the JSON body: the SDK's
// UpdateTunnel sends just the updateFields. A field given as null is
// cleared. Updatable: name, domain, description, labels, options,
// accessControl. tunnelId, if present and not empty, must be the tunnel's
// id. Unknown fields, and server-managed ones (clusterId, accessTokens,
// status, endpoints, created, expiration, customExpiration), are ignored.
// "ports" is honoured only when the PUT creates the tunnel: those ports are
// created with it.
//
// Syntax (400 otherwise): tunnelId and name match [a-z0-9][a-z0-9-]{0,62}
// (a superset of the SDK's generated ids); an empty or null name means the
// tunnelId, so every tunnel is reachable by id and by name. A name may not
// be another tunnel's id or name (409). domain is empty or
// [0-9a-z][0-9a-z.-]{1,158}[0-9a-z]; description at most 400 characters;
// at most 100 labels of 1–50 characters from [A-Za-z0-9_=-]; options and
// accessControl are JSON objects kept as given (warren does not enforce
// access control entries). Ports: number 1–65535, and a body portNumber must
// equal the path's; protocol [a-z0-9-]{1,20}, default "auto"; sshUser at
// most 60 characters. Tunnels do not expire: customExpiration is ignored.
//
// # Endpoints
//
// PUT /tunnels/{id}/endpoints/{eid}?connectionMode=TunnelRelay stores the
// endpoint (with Node = Config.Node) and answers it with hostRelayUri and
// clientRelayUri, ws(s)://<public host>[/prefix]/relay/{host,client}/{tunnelId}.
// Only the TunnelRelay mode exists. hostId defaults to eid without its
// "-relay" suffix; hostPublicKeys must be standard base64.
//
// GET /tunnels/{id} lists exactly one endpoint while a host is connected
// (Config.HostConnected; the most recently updated live endpoint if several
// are) and [] otherwise: the Go client refuses anything but exactly one.
// status.portCount and status.hostConnectionCount are filled in; ports'
// portForwardingUris come from Config.PortURIs (web forwarding and raw TCP
// URIs), and endpoints' portUriFormat from Config.PortURIFormat.
package tunnelapi
