// Package overlay holds the wire-level settings of warren's TURN overlay that
// tunnel-client and tunnel-server must agree on: the DTLS profiles (compat,
// identical to the vk-turn-proxy prototype, and the PSK default), the PSK key
// file format, the KCP+smux parameters of the tcp overlay, and the
// stage-named errors both sides report.
//
// It opens no sockets; the engines (turnclient, turnserver) do.
package overlay
