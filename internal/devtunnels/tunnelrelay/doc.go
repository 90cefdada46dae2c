// Package tunnelrelay serves relay-server's Dev Tunnels relay WebSockets:
// the host socket (GET /relay/host/{tunnelId}) and the client socket (GET
// /relay/client/{tunnelId}), as specified in
// docs/protocols/devtunnels.md §2.3–2.6 and §3.3.
//
// A Relay keeps at most one host session per tunnel. The relay is the SSH
// server of every host (warren's x/crypto/ssh fork, internal/sshfork, no
// client auth: the tunnel access token on the WebSocket upgrade is the
// authentication). It offers dev-tunnels-ssh's "none" key exchange besides
// the standard ones, so the official TypeScript/C# hosts and clients get
// in, and warren's own hosts and clients use it where TLS protects the
// socket (NoneAllowed, LegConfig; docs/protocols/devtunnels.md §2.4.1);
// peers that do not offer it get a standard, encrypted session. Clients
// reach the host in one of two ways:
//
//   - V1 (tunnel-relay-client, the only one the Go SDK speaks, and used on
//     V1 and V2 hosts alike): the relay opens a client-ssh-session-stream
//     channel on the host's SSH connection and splices the client's raw
//     WebSocket bytes onto it. The client and the host then speak SSH end to
//     end inside the channel; the relay never parses those bytes.
//   - V2 (tunnel-relay-client-v2-dev, only with a V2 host): the relay is the
//     SSH server of the client too. It announces every port the host
//     registered (tcpip-forward, cancel-tcpip-forward), checks each
//     forwarded-tcpip the client opens (connect-scope token of this tunnel,
//     registered port; otherwise "administratively prohibited") and bridges
//     it to a forwarded-tcpip with the same six-field payload on the host.
//
// When a host session ends, every client socket of that tunnel is closed.
//
// The other end is here too: Dial is the one upgrade of a host's or a
// client's relay socket (subprotocol choice, token header, refusals as
// typed errors), used by tunnelhost, tunnelclient and the probe's relay_ws
// check.
//
// # Host replacement and disconnect reason 11
//
// The spec asks the relay to send SSH_MSG_DISCONNECT with reason 11
// (SSH_DISCONNECT_TOO_MANY_CONNECTIONS) to a host that a newer host of the
// same tunnel replaces. Stock golang.org/x/crypto/ssh (and so far warren's
// fork of it, which does not add this) cannot do that:
// it sends a disconnect message only inside the server's authentication
// loop ("too many authentication failures"); an established ssh.Conn has
// no call that writes one (Close just drops the transport), and the packet
// cannot be written below x/crypto either, because after key exchange
// every packet is encrypted and MACed with keys x/crypto does not expose.
// A patched or vendored x/crypto would be needed for a real
// SSH_MSG_DISCONNECT.
//
// What the relay does instead is close the old host's WebSocket with close
// code 4011 (CloseStatusReplaced, private-use range, 4000 + 11) and the
// reason "ssh: disconnect, reason 11: replaced by another host"
// (ReplacedReason), then drop it. An x/crypto host reading through
// wsconn then gets, from ssh.Conn.Wait, an error such as
//
//	read websocket A->B: failed to get reader: received close frame:
//	status = StatusCode(4011) and reason = "ssh: disconnect, reason 11: replaced by another host"
//
// which matches both websocket.CloseStatus(err) == 4011 (the error chain
// survives x/crypto and wsconn) and a substring match on "reason 11:". It
// is not the `ssh: disconnect, reason 11: "<message>"` string that a real
// disconnect produces (the error is not a prefix match, and hosts other than
// warren's, such as the TS/C# SDKs, see only a WebSocket close).
package tunnelrelay
