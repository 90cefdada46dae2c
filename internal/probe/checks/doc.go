// Package checks holds probe's checks of a warren relay-server, its wings
// and the TURN overlay, each a probe.Kind registered by Register:
//
//   - relay_health: GET /healthz (status and version) and /readyz.
//   - relay_ws: the client relay WebSocket upgrade of a tunnel
//     (/relay/client/{tunnel}) with a connect token, or one fetched with an
//     API key; says which subprotocol was agreed.
//   - tunnel: end to end through the relay: a Dev Tunnels client
//     (internal/devtunnels/tunnelclient) connects to the tunnel, the probe dials the
//     tunnel's port through it and exchanges bytes (an echoed nonce, or an
//     expected banner).
//   - ticket: the ticket relay round trip: mint with an API key, PUT random
//     bytes, GET them on a second connection, compare SHA-256.
//   - wing_presence: GET /api/app/wings with a user token; the named wing
//     (or at least min_wings of the user's wings) is connected.
//   - wing_session: a PTY session on a wing through the relay, end-to-end
//     encrypted (internal/wing/wingclient): the wing runs "echo <nonce>", the
//     probe decrypts the output and expects the nonce and exit code 0.
//   - turn_allocate: TURN credentials from a provider link (generic-turn,
//     turn-rest; vk is UNKNOWN offline) or a static user, a TURN Allocate
//     over udp or tcp; reports the relayed address. Stages provider_resolve,
//     turn_dial, turn_allocate; a refused credential is CRITICAL.
//   - dtls_handshake: a DTLS handshake straight to a tunnel-server (PSK or
//     the compat profile); stage dtls_handshake.
//   - overlay_echo: the whole overlay path: a TURN allocation, DTLS to a
//     tunnel-server through the relay, a random datagram echoed back by the
//     tunnel-server's upstream (stages provider_resolve, turn_dial,
//     turn_allocate, dtls_handshake, forwarding_loop as in the overlay spec).
//
// Every check reports measured stages and fails with the stage that broke
// (dns, connect, http, upgrade, token, mint, transfer, list, presence,
// lookup, start, exchange, ...).
// Secrets are probe.Secret parameters; a minted ticket and a fetched token
// are added to the run's redactor as soon as they are known.
package checks
