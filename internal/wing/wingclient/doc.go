// Package wingclient is the user side of the wing protocol: it lists the
// wings a user token can reach (/api/app/wings) and starts or reattaches
// PTY sessions through /ws/pty, holding the per-client X25519 key that
// decrypts the session's output and encrypts its input. A Session
// acknowledges the output it has written (pty.ack, flow.go) to a wing that
// announces a window, so a slow io.Writer slows the remote program down
// (docs/protocols/wing.md §2.12). `wing ls` and
// `wing attach` are built on it; so can probe and other clients be.
package wingclient
