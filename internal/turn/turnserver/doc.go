// Package turnserver is the engine of tunnel-server: a DTLS listener that
// the TURN relay reaches, terminating each session (PSK by default, the
// prototype's unauthenticated profile with Compat) and forwarding it to one
// upstream, over a connected UDP socket per session (udp egress, raw
// overlay) or per client peer id (udp egress, framed overlay), or over
// KCP+smux with one TCP dial per stream (tcp egress). A PSK client with a
// wrong key is refused at once with a DTLS alert (turndial.Listener).
package turnserver
