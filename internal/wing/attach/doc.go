// Package attach runs one wing terminal session in a local terminal, or
// over a pipe: the engine behind `wing attach`. It picks the wing (the
// user's only one when none is named), opens or reattaches the session
// through wingclient, puts a terminal in raw mode and follows its size,
// sends the keys and copies the output, and watches for the detach key.
//
// Run's typed errors say how an attach ended (no wing, several wings, no
// shell, refused by the relay or wing, a non-zero exit of the remote
// program), so the command line can word them and choose exit codes.
package attach
