// Package webforward is relay-server's web forwarding: it serves HTTP
// requests, WebSocket upgrades included, for a tunnel port by proxying them
// through the relay to the port's host, so a browser or curl reaches the
// port without tunnel-client.
//
// Two URL forms name a port:
//
//   - by Host: https://<tunnelId>-<port>.<Domain>/path, for deployments with
//     a wildcard DNS record and certificate for *.<Domain>;
//   - by path: <public URL>/tunnels/<tunnelId>/ports/<port>/path, for those
//     without. The app sees /path, with X-Forwarded-Prefix set to the
//     stripped prefix; apps that emit absolute links need the Host form.
//
// Access needs a connect-scope token of the tunnel, or an anonymous
// "connect" entry in the port's accessControl (else the tunnel's). The
// token may come as "X-Tunnel-Authorization: tunnel <token>", as
// "Authorization: Tunnel <token>", or once as ?tunnel_token=<token> on a
// GET, which sets a cookie scoped to that port's URLs and redirects to the
// same path on the relay's own origin (leading slashes collapsed, so never
// to //other.host) without the parameter, so the token leaves the address
// bar. The relay's credentials are removed before the request reaches the
// app: every X-Tunnel-Authorization, every Authorization of the Tunnel
// scheme, and the token cookie (the app's other cookies pass). Set-Cookie
// lines of the token cookie's name are dropped from the app's answers.
//
// Forwarding headers are the relay's alone: Forwarded, X-Real-IP and every
// X-Forwarded-* the client sent are dropped (spelt with underscores too).
// The app receives X-Forwarded-For and X-Real-IP (the client's address),
// X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-Prefix in the path form
// only, and Host (and Origin, if present) rewritten to localhost:<port> as
// the Dev Tunnels service does, unless the port's or tunnel's options set
// isHostHeaderUnchanged (isOriginHeaderUnchanged).
//
// A request whose decoded path climbs above the app's root through ".."
// segments, however encoded (%2e%2e, ..%2f, ..%5c), is refused with 400;
// dot segments that stay inside pass on unchanged.
package webforward
