// Package ticket is warren's one-shot PUT→GET byte relay engine.
//
// A caller mints a ticket (POST /v1/tickets), then one uploader PUTs a body to
// /v1/relay/{ticket} and one downloader GETs the same URL. The relay pairs the
// two requests, in either order, and streams the upload into the download
// through a single 32 KiB buffer: nothing is stored, so memory per transfer is
// bounded whatever the size. The wire contract, including where warren
// deliberately differs from upstream, is shared/protocols/ticket-relay.md.
//
// # Mounting
//
// [Relay] is an [http.Handler] serving exactly these routes:
//
//	POST /v1/tickets          mint (Config.Authorize decides who may)
//	PUT  /v1/relay/{ticket}   upload, Authorization: Bearer {ticket}
//	GET  /v1/relay/{ticket}   download, Authorization: Bearer {ticket}
//
// Mount it on a mux for "/v1/tickets" and "/v1/relay/". Two properties of the
// surrounding server matter:
//
//   - Failures after the download's headers were sent are signalled by
//     panicking with [http.ErrAbortHandler] on the GET handler goroutine. That
//     is the only way net/http closes an HTTP/1.1 connection without the
//     terminating chunk (or resets an HTTP/2 stream), so the downloader can
//     never mistake a truncated body for a complete one. Recovery middleware
//     must re-panic http.ErrAbortHandler rather than turn it into a 500.
//   - The relay clears the per-request read and write deadlines that
//     http.Server's ReadTimeout and WriteTimeout install, so those global
//     limits do not cut long transfers. The controls are the ticket TTL
//     (pairing deadline) and Config.IdleTimeout (no progress after pairing).
//     The ResponseWriter must therefore support [http.ResponseController]
//     deadlines, as net/http's HTTP/1.1 and HTTP/2 servers do; wrappers must
//     implement Unwrap.
//
// # Lifecycle of a ticket
//
// A ticket is live from mint until its transfer ends, its TTL passes unpaired,
// or the relay is closed. Every ticket serves one transfer: after success or
// any failure it is deleted, its workspace slot is released, and later
// requests get 410. Each end is reported once: an audit log line (workspace,
// source, dest, bytes, sha256, outcome, err; never the ticket value) and the
// warren_ticket_transfers_total{outcome} counter.
package ticket
