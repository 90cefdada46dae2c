package winghub

import (
	"context"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// DefaultBrowserQueueBytes is Config.BrowserQueueBytes's default.
const DefaultBrowserQueueBytes = 8 << 20

// sendQueue is one user socket's outgoing frames. The wing's read loop
// only appends to it; a writer goroutine per socket does the network
// writes. So a user who reads slowly delays nobody but themselves: not the
// other sessions of the wing, nor other users.
//
// When the queue would grow past its byte bound, the socket is closed
// rather than frames dropped: a PTY stream with a hole in it is a
// corrupted screen, while a closed socket makes the client reattach and
// get a consistent replay of the screen.
type sendQueue struct {
	max int

	mu      sync.Mutex
	frames  []outFrame
	bytes   int
	closing bool // write what is queued, then close with code/reason
	code    websocket.StatusCode
	reason  string
	wake    chan struct{} // capacity 1
	done    chan struct{} // closed when the writer has returned
}

type outFrame struct {
	data []byte
	at   time.Time // not before: the bandwidth rate limit's hold
}

func newSendQueue(max int) *sendQueue {
	return &sendQueue{max: max, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (q *sendQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues a frame. false: the frame was not queued, because the
// socket is closing or because it overflowed the queue (overflowed says
// which; the queue then drops what it holds and closes the socket).
func (q *sendQueue) push(data []byte, at time.Time) (ok, overflowed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closing {
		return false, false
	}
	// One frame bigger than the bound still goes through an empty queue.
	if len(q.frames) > 0 && q.bytes+len(data) > q.max {
		for _, f := range q.frames {
			q.bytes -= len(f.data)
		}
		q.frames = nil
		q.closing, q.code = true, websocket.StatusPolicyViolation
		q.reason = "too slow: the relay's send queue for this socket is full; reattach to get a replay"
		q.signal()
		return false, true
	}
	q.frames = append(q.frames, outFrame{data: data, at: at})
	q.bytes += len(data)
	q.signal()
	return true, false
}

// closeAfter closes the socket once what is queued has been written.
func (q *sendQueue) closeAfter(code websocket.StatusCode, reason string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closing {
		q.closing, q.code, q.reason = true, code, reason
	}
	q.signal()
}

// next waits for a frame; ok false means write nothing more, and close
// (code, reason) unless ctx ended.
func (q *sendQueue) next(ctx context.Context) (f outFrame, ok bool) {
	for {
		q.mu.Lock()
		if len(q.frames) > 0 {
			f = q.frames[0]
			q.frames[0] = outFrame{}
			q.frames = q.frames[1:]
			q.mu.Unlock()
			return f, true
		}
		closing := q.closing
		q.mu.Unlock()
		if closing {
			return f, false
		}
		select {
		case <-q.wake:
		case <-ctx.Done():
			return f, false
		}
	}
}

// run is the socket's writer; it returns when ctx ends, a write fails, or
// the queue is closed. Each write is bounded by timeout.
func (q *sendQueue) run(ctx context.Context, ws *websocket.Conn, timeout time.Duration, sent func(n int)) {
	defer close(q.done)
	for {
		f, ok := q.next(ctx)
		if !ok {
			if ctx.Err() == nil {
				q.mu.Lock()
				code, reason := q.code, q.reason
				q.mu.Unlock()
				ws.Close(code, reason)
			}
			return
		}
		if wait := time.Until(f.at); wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		wctx, cancel := context.WithTimeout(ctx, timeout)
		err := ws.Write(wctx, websocket.MessageText, f.data)
		cancel()
		q.mu.Lock()
		q.bytes -= len(f.data)
		q.mu.Unlock()
		if err != nil {
			ws.CloseNow()
			return
		}
		sent(len(f.data))
	}
}
