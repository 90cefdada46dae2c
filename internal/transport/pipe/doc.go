// Package pipe joins two byte streams: it copies each one into the other
// until both are finished, the way a relay or tunnel endpoint splices a
// client connection onto an upstream one.
//
// Join propagates half-close: when one side stops sending (EOF), the other
// side's write half is shut down with CloseWrite, so protocols that send a
// request, half-close and then wait for the reply keep working through the
// splice. Bytes are reported as they are copied (Options.OnCopy), so metrics
// for long-lived connections grow while the connection is open rather than
// only when it ends.
//
// An idle connection costs little: a copy holds a pooled buffer (32 KiB,
// or 255 KiB, one largest SSH packet, once reads fill that) only while
// bytes flow. It waits on a plain socket with no buffer at all
// (a MSG_PEEK poll on Linux), takes the queued bytes of warren's SSH
// channels (sshfork's ConsumeData) without a buffer of its own, lets such a
// channel read a socket straight into the packet it sends (sshfork's
// ReadDataFrom: no buffer of the copy's, one copy fewer per byte), and reads
// any other source (a WebSocket, say) into 2 KiB first; Join runs one of its two copies on the
// calling goroutine.
//
// An idle connection also costs few goroutines: a copy out of one of
// warren's SSH channels (a source that says when it has data, notify.go)
// runs on a goroutine started when data arrives and gone when it is all
// written, so an idle channel holds none. JoinAsync is Join without the
// caller's goroutine: a splice of two channels (the relay's V2 bridge)
// holds no goroutine while idle, one of a channel and a socket holds one,
// waiting on the socket with a fresh stack.
package pipe
