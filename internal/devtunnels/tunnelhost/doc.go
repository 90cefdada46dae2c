// Package tunnelhost is the engine of tunnel-host: a Dev Tunnels host that
// registers an endpoint on a warren relay-server, keeps a relay session up
// and serves forwarded TCP ports on the local machine
// (docs/protocols/devtunnels.md §2.4–2.6, §3.1, §3.2, §4).
//
// # Lifecycle
//
// Run reads the tunnel with its ports (asking for a host token with
// tokenScopes=host when it has an operator API key and no host token yet),
// creates the configured ports once (409 tolerated), PUTs the endpoint
// {hostId}-relay with the host's nested-SSH public key (ed25519, generated
// by New, standard base64 of the SSH wire format), dials hostRelayUri with
// the subprotocols of Config.Mode and "Authorization: Tunnel <host token>",
// and runs the relay session as an SSH client (user "tunnel", no auth, relay
// host key not verified).
//
//   - V2: every port is registered with tcpip-forward (PortRelayRequest,
//     with the host token) and re-registered on add; cancel-tcpip-forward
//     on removal.
//   - Both versions accept forwarded-tcpip (six-field payload, four-field
//     fallback) to a forwarded port (else "administratively prohibited"),
//     and client-ssh-session-stream, on which a nested SSH server runs
//     (KEX ecdh-sha2-nistp384, ecdh-sha2-nistp256,
//     diffie-hellman-group14-sha256; none auth). The nested server announces
//     every port with tcpip-forward, accepts session channels (discarding
//     their requests), forwarded-tcpip and direct-tcpip to forwarded ports,
//     and answers RefreshPorts by re-reading the ports from the API.
//   - Any other channel type: "unknown channel type".
//
// Forwarded connections dial 127.0.0.1:P, then [::1]:P (or
// Config.LocalHost), and are spliced with pipe.Join (half-close kept).
//
// # Reconnects and errors
//
// After a lost session or a retryable failure (network errors, 429, 502,
// 503) Run waits with Config.Backoff (default 100 ms doubling to 12.8 s,
// sleep uniform in [d/2, d]; at least 6.4 s after 429/502/503) and tries
// again, forever; the backoff resets once a session is connected. The
// endpoint is re-PUT only when its signature
// (tunnelId.clusterId:name.domain:hasSshPort:hostId:hostPublicKeys)
// changes. Every attempt re-reads the tunnel, which also re-syncs the port
// set with the API.
//
// Fatal (Run returns): 400, 403, 404 and other unexpected statuses
// (*apiclient.StatusError); a relay replacement (ErrReplaced: WebSocket
// close code 4011, tunnelrelay.CloseStatusReplaced — the endpoint is not
// deleted and Run does not reconnect); a 401 on the relay upgrade that a fresh host token
// does not cure (ErrUnauthorized). On the first 401 the status becomes
// refreshingTunnelAccessToken, a new host token is read once through the
// API key and the upgrade is retried at once. Without an API key nothing can
// be refreshed, so any 401 is ErrUnauthorized at once; note that such a host
// uses its token for the management API too, so a bad token is normally
// refused there, before any relay upgrade is attempted.
//
// When ctx ends Run closes the session, deletes the endpoint and returns
// nil.
//
// # Metrics
//
// With Config.Registerer: warren_tunnel_host_status{status} (one-hot),
// warren_tunnel_host_forwarded_connections_total,
// warren_tunnel_host_bytes_total{direction="in"|"out"} (live, per copy),
// warren_tunnel_host_active_connections and
// warren_tunnel_host_e2e_streams_total{cipher} (the forwarded connections
// whose V2 stream this host end-to-end encrypted, by the inner session's
// host-to-client cipher). No tunnel ids as labels.
package tunnelhost
