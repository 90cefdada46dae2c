// Package wingproto holds the wire format of the wing protocol
// (docs/protocols/wing.md), wire-compatible with wingthing: the JSON
// messages exchanged between relay-server, wings and browsers (with
// warren's output flow control, flow.go: pty.ack and pty.started.window), the
// end-to-end crypto (X25519, HKDF-SHA256, AES-256-GCM) that keeps PTY and
// tunnel payloads opaque to the relay, and the replay chunk encoding.
//
// Every message is one WebSocket text frame holding one JSON object with a
// "type" string. [DecodeType] reads just the type; [Decode] fills a typed
// struct. Both accept arbitrary untrusted bytes and are fuzzed. A direct
// session's DataChannel also carries binary output frames
// ([Cipher.SealFrame], [Cipher.OpenFrame], fuzzed too).
package wingproto
