// Package ticket is warren's one-shot PUT→GET byte relay engine.
//
// A caller mints a ticket (POST /v1/tickets), then one uploader PUTs a body to
// /v1/relay/{ticket} and one downloader GETs the same URL. The relay pairs the
// two requests, in either order, and streams the upload into the download
// through a single 32 KiB buffer: nothing is stored, so memory per transfer is
// bounded whatever the size. The wire contract, including where warren
// deliberately differs from upstream, is docs/protocols/ticket-relay.md.
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
// # What the PUT's 200 promises
//
// A PUT answered 200 {"bytes":N,"status":"ok","sha256":…} means the whole
// upload was read (exactly its Content-Length, if it declared one), no more
// than max_bytes, and every byte was written to the downloader's connection
// without error. It does not mean the downloader has them: written bytes
// may still sit in kernel buffers or in a proxy when the downloader dies.
// The end-to-end check belongs to the downloader: a body short of its
// Content-Length or without its terminating chunk is a failed download
// (curl exits non-zero), and the digest it computes must equal the
// X-Relay-Sha256 trailer (chunked HTTP/1.1, HTTP/2) or the PUT's sha256.
//
// A downloader that has received its whole Content-Length may close its
// connection or reset its HTTP/2 stream without waiting for the trailer, as
// curl does; the transfer still counts as delivered once the upload ends.
// On HTTP/2 the relay learns the fate of its last write only after the
// stream's state, so a downloader that vanishes while the last bytes are
// being written is indistinguishable from one that took them and left; it
// too is counted as delivered, and it sees a body short of its
// Content-Length.
//
// # HTTP/1.0 downloaders
//
// HTTP/1.0 has no chunked encoding: a body without Content-Length ends when
// the connection closes, so a streamed upload that broke would reach an
// HTTP/1.0 downloader as a clean, truncated file. When an HTTP/1.0 GET and
// an upload without Content-Length meet, in either order, the transfer
// fails before any byte moves: the GET gets 505 and the PUT gets 502, each
// saying why, and the ticket is consumed. Uploads with a Content-Length
// reach HTTP/1.0 downloaders normally. nginx speaks HTTP/1.0 to its
// upstreams by default; a relay behind it needs proxy_http_version 1.1.
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
