// Package worker runs short jobs (a copy that drains what a connection
// queued, a parked SSH loop resumed) on goroutines that outlive them
// briefly.
//
// A job started afresh on `go f()` each time data arrives grows a new
// goroutine's stack every time: the write path through WebSocket and TCP
// needs more than the 2 KiB a goroutine starts with, and the copy of the
// stack showed as a few percent of relay-server's CPU per GiB. A worker
// keeps the stack it grew while the process is busy, and a quiet process
// keeps none: a worker with nothing to do for IdleTime ends.
//
// internal/sshfork has the same pool of its own (runLoop): the fork must
// build inside an x/crypto checkout (scripts/update-sshfork.sh
// upstream-test), where warren's packages cannot be imported.
package worker
