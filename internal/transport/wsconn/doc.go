// Package wsconn carries a byte stream over a WebSocket as a net.Conn, so
// that stream protocols such as SSH can run through HTTP infrastructure
// (the approach Microsoft Dev Tunnels takes).
//
// It does what websocket.NetConn from github.com/coder/websocket does
// (every Write is one binary message; reads see a continuous stream; a
// close with status 1000 or 1001 reads as io.EOF), without NetConn's
// per-call contexts, whose cancellation registration on every frame read
// and written showed in the profile of a busy tunnel, and adds what warren
// needs on top:
//
//   - real addresses: Dial reports the addresses of the underlying TCP
//     connection, where coder/websocket only has a placeholder for dialed
//     connections, and Options lets a server report addresses as its HTTP
//     stack saw them (see RequestAddrs);
//   - deadlines that behave like the net package's: a deadline that has
//     already passed fails Read or Write with an error whose Timeout()
//     is true, without touching the connection;
//   - the negotiated subprotocol;
//   - one write per frame (coalesce.go): coder/websocket writes a frame in
//     pieces (a client masks through a 4 KiB buffer, so a 32 KiB frame was
//     eight system calls; a server writes the header and first 4 KiB, then
//     the rest). Dial's connection and the connection Accept hijacks are
//     wrapped so that a frame's pieces leave together, small pieces copied
//     and a large one written in place with writev. For wss:// Dial does
//     the TLS handshake itself (when no proxy is in the way) so that this
//     happens above TLS, one TLS record run per frame.
//
// # Deadlines
//
// coder/websocket cannot interrupt a blocked read or write without closing
// the connection, so a deadline that expires while a Read or Write is
// blocked closes the WebSocket (the call returns a timeout error). A
// deadline that has already passed when Read or Write is called is cheap
// and harmless. Code that uses deadlines only as a liveness timeout, as SSH
// and most proxies do, is unaffected; code that uses a short deadline to
// poll for data must not use this package.
//
// # No half-close
//
// Conn has no CloseWrite. A WebSocket close frame ends both directions
// (RFC 6455 §5.5.1: after sending Close an endpoint sends no more data, and
// the peer is expected to answer with its own Close promptly), so there is
// no way to say "no more data from me" and keep reading without a
// convention layered on top, which every peer would then have to speak.
// Protocols that need half-close carry it themselves: SSH, for instance,
// has per-channel EOF messages. Close performs the close handshake, which
// the peer sees as io.EOF.
package wsconn
