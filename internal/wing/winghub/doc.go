// Package winghub is the relay side of the wing protocol
// (docs/protocols/wing.md): it accepts wings on /ws/wing and users on
// /ws/pty and /ws/relay, assigns session ids, and routes frames between
// them by session id, viewer id and request id. It injects the
// authenticated identity into frames it forwards and never decrypts: PTY
// and tunnel payloads are end-to-end encrypted between wing and user.
//
// Frames to a user socket go through that socket's own bounded queue and
// writer goroutine, so a slow user delays only themselves; one that falls
// Config.BrowserQueueBytes behind is closed and reattaches with a replay.
// Controllers that acknowledge output (pty.ack, passed to the wing) are
// kept from falling that far behind by the wing's output window; the hub
// tells the wing when such a controller leaves (flow.go,
// docs/protocols/wing.md §2.12).
//
// Token checks are hooks (Config.VerifyWing, Config.VerifyUser) so the hub
// does not depend on how the relay issues tokens.
package winghub
