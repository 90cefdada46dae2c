package pipe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/warrenhq/warren/internal/memtrim"
)

// Direction names one of the two copies Join runs.
type Direction int

const (
	// AToB is the copy that reads from a and writes to b.
	AToB Direction = iota
	// BToA is the copy that reads from b and writes to a.
	BToA
)

// String returns "a->b" or "b->a".
func (d Direction) String() string {
	switch d {
	case AToB:
		return "a->b"
	case BToA:
		return "b->a"
	default:
		return fmt.Sprintf("Direction(%d)", int(d))
	}
}

// Options configures Join. A nil *Options means the defaults.
type Options struct {
	// OnCopy, if non-nil, is called after every write with the direction
	// and the number of bytes just written, so byte counters (for example
	// Prometheus counters) grow while a long connection is still open
	// instead of jumping once when it closes.
	//
	// It is called from Join's copy goroutines, concurrently for the two
	// directions, and it must not block: a slow OnCopy slows the copy.
	// Default: nil (no callback).
	OnCopy func(dir Direction, n int)
}

// Stats is how many bytes Join copied in each direction.
type Stats struct {
	AToB int64 // bytes read from a and written to b
	BToA int64 // bytes read from b and written to a
}

// Error is the error Join returns when one direction fails.
type Error struct {
	Dir Direction // the copy that failed
	// Op is what failed: "read" (from the source of Dir), "write" (to its
	// destination) or "closewrite" (propagating EOF to the destination).
	Op  string
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("pipe %s: %s: %v", e.Dir, e.Op, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// closeWriter is implemented by *net.TCPConn, *net.UnixConn and
// *tls.Conn, among others.
type closeWriter interface {
	CloseWrite() error
}

// Buffers. A copy holds a pooled buffer only while bytes flow, and gives
// it back as soon as its source runs dry, so an idle connection (the
// common case for a tunnel: thousands of open, quiet connections) holds
// next to nothing:
//
//   - a source that is a plain socket (*net.TCPConn, *net.UnixConn) is
//     waited on with no buffer at all (see waitReadable);
//   - any other source (an SSH channel, a WebSocket) is first read into a
//     smallBufSize buffer, and only a read that fills it moves the copy to
//     a pooled buffer.
//
// Pooled buffers come in two sizes. A copy starts with a bufSize one and
// moves to a bigBufSize one when a read fills it; a bigBufSize one is the
// largest SSH channel packet warren's relay legs allow (sshfork's
// ssh.MaxChannelMaxPacket), so that a copy into an SSH channel sends what
// one read returned as one packet and a copy out of one takes whole
// packets: per-packet and per-write costs, not per-byte ones, dominate a
// tunnel's CPU. A copy that is streaming goes on taking big buffers after
// a short read that was still larger than bufSize, while a burst of short
// exchanges on many connections (many concurrent copies, each one read)
// only ever takes small pooled buffers, which keeps what the pool grows to
// at such a peak as it was before big buffers.
//
// A read that does not fill the pooled buffer means the source had no
// more ready: the buffer goes back to the pool after that write.
const (
	bufSize      = 32 << 10 // io.Copy's default
	bigBufSize   = 255 << 10
	smallBufSize = 2 << 10
)

var (
	bufPool = sync.Pool{New: func() any {
		b := make([]byte, bufSize)
		return &b
	}}
	bigBufPool = sync.Pool{New: func() any {
		b := make([]byte, bigBufSize)
		return &b
	}}
)

// held counts the pooled buffers copies hold right now (tests read it).
var held atomic.Int64

func getBuf(big bool) *[]byte {
	held.Add(1)
	if big {
		return bigBufPool.Get().(*[]byte)
	}
	return bufPool.Get().(*[]byte)
}

func putBuf(b *[]byte) {
	held.Add(-1)
	if len(*b) == bigBufSize {
		bigBufPool.Put(b)
	} else {
		bufPool.Put(b)
	}
}

// Join copies a to b and b to a concurrently and returns when both copies
// are done. Join owns a and b: both are closed by the time it returns.
//
// When a copy reaches EOF on its source it half-closes its destination
// with CloseWrite if the destination has a CloseWrite() error method, and
// the other copy carries on until it too reaches EOF. A destination without
// CloseWrite (a websocket, say) has no way to signal end of stream and is
// closed instead, which also ends the copy reading from it: otherwise a
// peer waiting for EOF would wait forever.
//
// If either copy fails, or ctx is done, Join closes both a and b so that
// the other copy unblocks; this relies on Close unblocking pending Read and
// Write calls, which holds for net.Conn. Errors caused by Join's own
// closing of a connection are not reported, nor are errors from Close.
//
// The error is nil if both directions ended with EOF, ctx.Err() if ctx
// ended first, and otherwise an *Error for the first direction that failed.
// Stats counts the bytes written in each direction either way.
//
// Join runs one copy on the calling goroutine and starts one more for the
// other, except that a copy out of a source that says when it has data
// (warren's SSH channels, see notify.go) runs only while it has some, on a
// goroutine started for the purpose: an open connection costs two
// goroutines, one with one such end, and none but the caller's with two.
func Join(ctx context.Context, a, b io.ReadWriteCloser, opts *Options) (Stats, error) {
	done := make(chan struct{})
	j := newJoiner(ctx, a, b, opts, func() { close(done) })
	j.start(true)
	<-done
	return j.result()
}

// JoinAsync is Join that returns at once: done, if non-nil, is called with
// what Join would return once both copies are done and a and b are closed,
// on a goroutine of JoinAsync's. An idle connection between two sources
// that say when they have data (warren's SSH channels) then costs no
// goroutine at all, and one with a socket end only the one waiting on it,
// started with a fresh stack: the caller's goroutine, whose stack grew
// while it set the connection up, is free to end.
func JoinAsync(ctx context.Context, a, b io.ReadWriteCloser, opts *Options, done func(Stats, error)) {
	j := newJoiner(ctx, a, b, opts, nil)
	j.onDone = func() {
		if done != nil {
			done(j.result())
		}
	}
	j.start(false)
}

func newJoiner(ctx context.Context, a, b io.ReadWriteCloser, opts *Options, onDone func()) *joiner {
	j := &joiner{ends: [2]end{{rwc: a}, {rwc: b}}, onDone: onDone}
	j.left.Store(2)
	if opts != nil {
		j.onCopy = opts.OnCopy
	}
	j.stop = context.AfterFunc(ctx, func() { j.fail(ctx.Err()) })
	memtrim.Opened() // a sharp fall in open splices gives memory back
	return j
}

// start starts both copies; with inline, one that needs a goroutine of its
// own runs on the caller's.
func (j *joiner) start(inline bool) {
	var blocking []Direction
	for _, dir := range [2]Direction{AToB, BToA} {
		if n, ok := j.ends[dir].rwc.(notifier); ok {
			j.startNotified(dir, n)
		} else {
			blocking = append(blocking, dir)
		}
	}
	for i, dir := range blocking {
		if inline && i == len(blocking)-1 {
			j.runCopy(dir)
		} else {
			go j.runCopy(dir)
		}
	}
}

// runCopy runs the blocking copy of dir to its end.
func (j *joiner) runCopy(dir Direction) {
	n, err := j.copy(dir)
	j.finish(dir, n, err)
}

// finish records the end of dir's copy; the last one closes both ends and
// reports.
func (j *joiner) finish(dir Direction, n int64, err error) {
	j.mu.Lock()
	j.stats[dir] = n
	j.mu.Unlock()
	if err != nil {
		j.fail(err)
	}
	if j.left.Add(-1) > 0 {
		return
	}
	j.stop()
	j.closeAll()
	memtrim.Closed()
	if j.onDone != nil {
		j.onDone()
	}
}

func (j *joiner) result() (Stats, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return Stats{AToB: j.stats[AToB], BToA: j.stats[BToA]}, j.err
}

type end struct {
	rwc io.ReadWriteCloser
	// closed is set before Join closes rwc, so that an error seen after it
	// is known to be our own doing and not reported.
	closed atomic.Bool
	once   sync.Once
}

func (e *end) close() {
	e.once.Do(func() {
		e.closed.Store(true)
		_ = e.rwc.Close() // nothing useful to do with it; see Join
	})
}

type joiner struct {
	ends   [2]end // indexed by Direction: ends[AToB] is a
	onCopy func(Direction, int)
	onDone func()      // after both copies ended and both ends are closed
	stop   func() bool // unregisters the ctx AfterFunc
	left   atomic.Int32

	mu    sync.Mutex
	err   error    // the first failure (or ctx.Err()), returned by Join
	stats [2]int64 // indexed by Direction
}

// fail records the first error and closes both ends so that the other copy
// unblocks.
func (j *joiner) fail(err error) {
	j.mu.Lock()
	if j.err == nil {
		j.err = err
	}
	j.mu.Unlock()
	j.closeAll()
}

func (j *joiner) closeAll() {
	j.ends[0].close()
	j.ends[1].close()
}

// consumer is a source that lends its queued bytes instead of copying
// them into a buffer: warren's SSH channels (sshfork's ConsumeData). The
// bytes go straight to the destination, and an idle copy holds no buffer.
type consumer interface {
	ConsumeData(fn func(p []byte) error) (int, error)
}

// copy runs one direction and returns the bytes written and a nil error on
// EOF or on an error caused by our own close.
func (j *joiner) copy(dir Direction) (int64, error) {
	src, dst := &j.ends[dir], &j.ends[1-dir]
	if c, ok := src.rwc.(consumer); ok {
		return j.copyConsumed(dir, c)
	}
	raw := rawConn(src.rwc)
	if d, ok := dst.rwc.(dataReader); ok && raw != nil {
		return j.copyInto(dir, raw, d)
	}
	stream := isStream(src.rwc)

	var (
		pooled *[]byte // from bufPool or bigBufPool while bytes flow
		small  []byte  // allocated on the first read that needs it
		hot    bool    // the last pooled read returned more than bufSize
		total  int64
	)
	defer func() {
		if pooled != nil {
			putBuf(pooled)
		}
	}()
	for {
		var buf []byte
		switch {
		case pooled != nil:
			buf = *pooled
		case raw != nil:
			peeked, err := waitReadable(raw)
			if err != nil {
				return total, j.failed(dir, "read", src, err)
			}
			if peeked == 0 && stream {
				return total, j.eof(dir, dst) // no buffer for a Read of EOF
			}
			pooled = getBuf(hot)
			buf = *pooled
		default:
			if small == nil {
				small = make([]byte, smallBufSize)
			}
			buf = small
		}
		nr, rerr := src.rwc.Read(buf)
		if nr > 0 {
			nw, werr := dst.rwc.Write(buf[:nr])
			nw, werr = checkWrite(nw, nr, werr)
			j.counted(dir, &total, nw)
			if werr != nil {
				return total, j.failed(dir, "write", dst, werr)
			}
		}
		if errors.Is(rerr, io.EOF) {
			return total, j.eof(dir, dst)
		}
		if rerr != nil {
			return total, j.failed(dir, "read", src, rerr)
		}
		switch {
		case pooled != nil && nr < len(buf):
			// The source ran dry: do not hold the buffer while waiting.
			hot = nr > bufSize
			putBuf(pooled)
			pooled = nil
		case pooled != nil && len(buf) < bigBufSize:
			// A pooled buffer filled up: move to a big one.
			putBuf(pooled)
			pooled = getBuf(true)
		case pooled == nil && nr == len(buf):
			// The small buffer filled up: more is likely ready.
			pooled = getBuf(hot)
		}
	}
}

// consumeWriter is the func a consumer source hands its queued bytes to:
// it writes them to dir's destination and reports the write to
// consumeDone's func.
func (j *joiner) consumeWriter(dir Direction, total *int64) func(p []byte) error {
	dst, done := &j.ends[1-dir], j.consumeDone(dir, total)
	return func(p []byte) error {
		nw, err := dst.rwc.Write(p)
		return done(checkWrite(nw, len(p), err))
	}
}

// errInvalidWrite is a destination's Write that reported writing more
// than it was given, or less than nothing.
var errInvalidWrite = errors.New("invalid write result")

// checkWrite checks the result of a Write of want bytes: an impossible
// count is 0 and errInvalidWrite, a short one without error
// io.ErrShortWrite.
func checkWrite(nw, want int, err error) (int, error) {
	switch {
	case nw < 0 || nw > want:
		return 0, cmp.Or(err, errInvalidWrite)
	case err == nil && nw < want:
		return nw, io.ErrShortWrite
	}
	return nw, err
}

// counted adds n bytes copied in dir to *total and reports them to onCopy.
func (j *joiner) counted(dir Direction, total *int64, n int) {
	if n > 0 {
		*total += int64(n)
		if j.onCopy != nil {
			j.onCopy(dir, n)
		}
	}
}

// consumeDone returns the func that takes the result of each write of a
// consumer source's bytes to dir's destination: it counts them into
// *total and reports them to onCopy; a failed write comes back as a
// *writeError, so the copy can tell it from the source's own errors.
func (j *joiner) consumeDone(dir Direction, total *int64) func(nw int, err error) error {
	return func(nw int, err error) error {
		if nw < 0 {
			nw, err = 0, cmp.Or(err, errInvalidWrite)
		}
		j.counted(dir, total, nw)
		if err != nil {
			return &writeError{err}
		}
		return nil
	}
}

// copyConsumed is copy for a consumer source.
func (j *joiner) copyConsumed(dir Direction, c consumer) (int64, error) {
	src, dst := &j.ends[dir], &j.ends[1-dir]
	var total int64
	write := j.consumeWriter(dir, &total)
	for {
		_, err := c.ConsumeData(write)
		var we *writeError
		switch {
		case err == nil:
		case errors.As(err, &we):
			return total, j.failed(dir, "write", dst, we.err)
		case errors.Is(err, io.EOF):
			return total, j.eof(dir, dst)
		default:
			return total, j.failed(dir, "read", src, err)
		}
	}
}

// dataReader is a destination that reads its source itself, straight into
// the packet it sends: warren's SSH channels (sshfork's ReadDataFrom). A
// copy from a socket into one needs no buffer of its own, and each byte is
// copied once less.
type dataReader interface {
	ReadDataFrom(r io.Reader, limit int) (n int, rerr, werr error)
}

// copyInto is copy from a socket source into a dataReader, with copy's
// sizes: bufSize at first, bigBufSize while reads fill what they asked for.
func (j *joiner) copyInto(dir Direction, raw syscall.RawConn, d dataReader) (int64, error) {
	src, dst := &j.ends[dir], &j.ends[1-dir]
	var total int64
	size, ready := bufSize, false
	stream := isStream(src.rwc)
	for {
		if !ready {
			// Wait with no buffer held, as copy does.
			peeked, err := waitReadable(raw)
			if err != nil {
				return total, j.failed(dir, "read", src, err)
			}
			if peeked == 0 && stream {
				// End of stream: no packet buffer for a read that would
				// return nothing (a burst of closes would take one each).
				return total, j.eof(dir, dst)
			}
		}
		n, rerr, werr := d.ReadDataFrom(src.rwc, size)
		j.counted(dir, &total, n)
		if werr != nil {
			return total, j.failed(dir, "write", dst, werr)
		}
		if errors.Is(rerr, io.EOF) {
			return total, j.eof(dir, dst)
		}
		if rerr != nil {
			return total, j.failed(dir, "read", src, rerr)
		}
		// A read that filled what it asked for: more is likely ready.
		ready = n == size
		switch {
		case ready:
			size = bigBufSize
		case n <= bufSize:
			size = bufSize
		}
	}
}

// writeError marks a destination's error that came back through a
// consumer's ConsumeData.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }

// eof propagates the end of dir's source to its destination.
func (j *joiner) eof(dir Direction, dst *end) error {
	cw, ok := dst.rwc.(closeWriter)
	if !ok {
		dst.close()
		return nil
	}
	if err := cw.CloseWrite(); err != nil {
		return j.failed(dir, "closewrite", dst, err)
	}
	return nil
}

// failed turns err into an *Error unless it came from our own close of e.
func (j *joiner) failed(dir Direction, op string, e *end, err error) error {
	if e.closed.Load() {
		return nil
	}
	return &Error{Dir: dir, Op: op, Err: err}
}
