// Package turndial is the client side of a TURN leg and the DTLS profiles
// of warren's TURN overlay, shared by tunnel-client (turnclient),
// tunnel-server (turnserver) and probe's TURN checks.
//
// A TURN leg is opened in two steps, so that callers can time and name
// them separately (stages turn_dial and turn_allocate):
//
//	conn, err := turndial.Dial(ctx, cfg)          // UDP socket or STUN-framed TCP conn
//	a, err := turndial.Allocate(ctx, conn, cfg)   // pion/turn/v4 client + relayed conn
//	defer a.Close()
//
// A caller that already has a socket passes it in Config.PacketConn or
// Config.Conn, as pion's own APIs do. Error responses from the TURN server
// come back as *ResponseError, which matches the sentinels (ErrUnauthorized
// for 401, ErrAllocationQuota for 486, ...) with errors.Is; nothing here or
// in its callers matches on TURN error text. The one text match is on
// pion/dtls, which keeps its alert error type unexported (AlertIs) and
// reports an undecryptable record only to its logger (Listener), both
// pinned by tests.
//
// The DTLS half holds the profiles both overlay ends must agree on
// (docs/protocols/turn-overlay.md §2.2–2.4): the PSK profile
// (TLS_PSK_WITH_AES_128_GCM_SHA256) and the prototype's unauthenticated
// compat profile (self-signed ECDSA), both with extended master secret and
// an 8-byte connection ID assigned by the server, so that a session
// survives its TURN allocation being replaced. Listener is tunnel-server's
// DTLS listener: it refuses a PSK client with a wrong key at once with a
// bad_record_mac alert instead of letting both handshakes time out, and
// ExplainHandshake turns the refusals into errors naming the PSK settings.
//
// Errors carry no stage names: this package sits below the engines, which
// attach the stage (overlay.StageTURNDial, ...) they were in.
package turndial
