// Package overlay holds the wire-level settings of warren's TURN overlay that
// tunnel-client and tunnel-server must agree on: the PSK key file format,
// the KCP+smux parameters of the tcp overlay, and the stage-named errors
// both sides report. The DTLS profiles (compat, identical to the
// vk-turn-proxy prototype, and the PSK default) live with the TURN dialing
// in internal/transport/turndial, which probe shares.
//
// It opens no sockets; the engines (turnclient, turnserver) do.
package overlay
