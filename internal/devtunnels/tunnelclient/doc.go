// Package tunnelclient is the engine of `tunnel-client connect`: a Dev
// Tunnels client that connects to a tunnel on a warren relay-server and
// exposes every forwarded port of the tunnel's host as a local TCP listener
// (docs/protocols/devtunnels.md §2.3–2.6, §3, §4).
//
// # Lifecycle
//
// Every connection attempt reads the tunnel with
// GET /tunnels/{id}?includePorts=true&tokenScopes=connect, authorised with
// the operator key ("Bearer", Config.APIKey) or else the connect token
// ("Tunnel", Config.ConnectToken). The tunnel must have exactly one endpoint
// with a clientRelayUri (the connected host), which is dialed with the
// subprotocols of Config.Mode (auto: tunnel-relay-client-v2-dev, then
// tunnel-relay-client) and "Authorization: Tunnel <connect token>". The
// connect token is the one the GET returned (a fresh one) or, if it returned
// none, Config.ConnectToken.
//
//   - V2 (tunnel-relay-client-v2-dev): the relay is the SSH server (user
//     "tunnel", no auth, relay host key not verified: the WebSocket URL and
//     TLS identify the relay). It announces each host port with tcpip-forward
//     and withdraws it with cancel-tcpip-forward. Each local connection opens
//     a forwarded-tcpip channel with the six-field PortRelayConnectRequest
//     (host 127.0.0.1, the port, the local peer's address, the connect
//     token, E2EE not requested).
//   - V1 (tunnel-relay-client): the socket carries an SSH session to the
//     host itself (nested, end to end). The client is the SSH client (user
//     "tunnel", no auth) and checks the host key against the endpoint's
//     hostPublicKeys (standard base64 of the SSH wire format); if none is
//     published it accepts any key, as the Go SDK always does. It opens a
//     session channel and keeps it open (as the SDK does), handles the
//     host's tcpip-forward / cancel-tcpip-forward, and opens forwarded-tcpip
//     with the standard four-field payload.
//
// Every announced port P gets a listener on Config.Bind (default 127.0.0.1)
// at Config.PortMap[P], or at P when unmapped; it sends an Event "ready"
// (Addr = the listener address). A port that cannot be listened on (already
// taken, say) is reported as an Event "ready" with Err set and skipped (the
// tcpip-forward is answered false); it is tried again if announced again.
// A withdrawn port's listener is closed and an Event "removed" sent. Local
// connections are spliced onto their channels with pipe.Join, half-close
// kept in both directions.
//
// # Reconnects and errors
//
// When the relay session is lost, Run sends Event "disconnected" and
// reconnects with Config.Backoff (default 100 ms doubling to 12.8 s, sleep
// uniform in [d/2, d]; at least 6.4 s after 429/502/503); the backoff resets
// after each connected session. Listeners stay open across reconnects. A
// local connection is forwarded only on a session that has announced its
// port: one accepted while disconnected (or before the new session has
// announced the port) waits up to 10 s (pendingWait) for that and is then
// closed. Once a new session is up, listeners of ports that it has not
// announced within 3 s (staleGrace) are removed ("removed" events).
//
// Fatal errors (Run returns them): ErrTunnelNotFound (404 on the tunnel),
// ErrRefused (401 or 403 from the management API; 403 on the relay
// upgrade; a 401 on the upgrade that a fresh token read through the API key
// does not cure, or any 401 without an API key), ErrNoHost (no host
// connected on the very first connect: no endpoint, or 404 on the upgrade;
// later host losses are retried), and other unexpected statuses such as
// 400 (*apiclient.StatusError). When ctx ends, Run closes everything and
// returns nil.
//
// Events are sent on the channel given to Run; sends block (until ctx ends),
// so the channel must be drained promptly, or be nil.
//
// # Metrics
//
// With Config.Registerer: warren_tunnel_client_connected (0/1),
// warren_tunnel_client_connections_total,
// warren_tunnel_client_active_connections and
// warren_tunnel_client_bytes_total{direction="out"|"in"} (out = from the
// local connection to the tunnel). No tunnel ids as labels.
package tunnelclient
