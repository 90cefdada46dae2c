// Package overlay holds the wire-level settings of warren's TURN overlay that
// tunnel-client and tunnel-server must agree on: the PSK key file format,
// the KCP+smux parameters of the tcp overlay, the framing of the udp
// overlay's version 2 (ALPN warren-udp/2: a type byte and a peer id per
// record, so one DTLS session carries many local peers), and the
// stage-named errors both sides report. The DTLS profiles (compat, identical to the
// vk-turn-proxy prototype, and the PSK default) live with the TURN dialing
// in internal/transport/turndial, which probe shares.
//
// It opens no sockets; the engines (turnclient, turnserver) do.
package overlay
