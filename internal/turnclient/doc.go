// Package turnclient is the engine of `tunnel-client turn`: it resolves
// TURN credentials through a provider, runs N supervised workers (each one
// TURN allocation plus one DTLS session to tunnel-server through the relay)
// and dispatches local traffic over them: UDP datagrams with exclusive
// worker→peer reply bindings (udp ingress), or TCP connections as smux
// streams over KCP over DTLS (tcp ingress). See turn-overlay spec §3.1–3.2.
package turnclient
