package wingclient

import (
	"context"

	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Output flow control (docs/protocols/wing.md §2.12). The client declares
// acks in pty.start and pty.attach (a controller's); a wing that announces
// a window in pty.started holds the session's output while the controller
// has that much unacknowledged. The client acknowledges
// (pty.ack, sealed like pty.input) the output offset it has written to
// its io.Writer: a writer that blocks (a slow terminal) slows the remote
// program down, instead of the relay queueing output until it disconnects
// the client. Spectators do not acknowledge: the wing never waits for
// them.

// clientFlow is the session's acknowledgement state; readLoop only.
type clientFlow struct {
	window int64 // from pty.started; 0: the wing takes no acks
	sent   bool  // an ack was sent since pty.started
	acked  int64 // the last offset acknowledged
}

// flowStarted: pty.started came, with the wing's window.
func (s *Session) flowStarted(window int64) {
	s.flow = clientFlow{}
	if !s.opts.Spectate && window > 0 {
		s.flow.window = window
	}
}

// flowFirst: live output from offset seq came over the relay. The first
// such frame is acknowledged at once, before it is written: it turns the
// window on at the wing one round trip early.
func (s *Session) flowFirst(ctx context.Context, seq *int64) {
	if s.flow.window == 0 || s.flow.sent || seq == nil {
		return
	}
	s.ack(ctx, *seq)
}

// flowConsumed: output was written; acknowledge it once a quarter of the
// window has been written since the last ack.
func (s *Session) flowConsumed(ctx context.Context) {
	if s.flow.window == 0 {
		return
	}
	next, ok := s.d.ord.Next()
	if !ok {
		return
	}
	if !s.flow.sent || next-s.flow.acked >= s.flow.window/wp.AckEvery {
		s.ack(ctx, next)
	}
}

func (s *Session) ack(ctx context.Context, seq int64) {
	s.mu.Lock()
	c, sid := s.cipher, s.id
	s.mu.Unlock()
	if c == nil {
		return
	}
	s.flow.sent, s.flow.acked = true, seq
	// A failed write is the connection failing: readLoop notices.
	s.send(ctx, wp.Ack{Type: wp.TypePTYAck, SessionID: sid, Data: wp.SealAck(c, seq)})
}
