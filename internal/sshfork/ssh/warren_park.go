package ssh

import (
	"bufio"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// warren: an SSH connection that runs inside a channel of another one
// (a V2 end-to-end encrypted stream, a V1 nested session) is one per
// forwarded connection, and mostly idle. Its three loops (the transport's
// reader, the key exchange loop and the mux's packet loop) each keep a
// goroutine parked for the connection's life, and its transport keeps a
// 4 KiB bufio.Reader and Writer. When the net.Conn under the connection
// says when it has data (readNotifier: this package's channels do, through
// a wrapper that adds the net.Conn methods), the loops end instead of
// waiting once the first key exchange is done, and start again on a fresh
// goroutine when there is work: data on the conn for the reader, a packet
// from the reader for the mux, a key exchange request for the key
// exchange loop. The bufio buffers come from a pool for a read or a write
// and go back once empty. An idle connection then costs its structs, no
// goroutine and no buffer.

// readNotifier is a net.Conn that says when a Read would not wait.
type readNotifier interface {
	// SetDataNotify has fn called, without blocking, whenever the conn
	// may have data or its end queued for Read (at once if it has).
	SetDataNotify(fn func())
	// Readable reports whether Read would return without waiting.
	Readable() bool
}

// Readable reports whether Read (of the channel's data stream, not its
// extended data) would return without waiting: data, or its end, is
// queued. (warren)
func (c *channel) Readable() bool {
	b := c.pending
	b.Cond.L.Lock()
	defer b.Cond.L.Unlock()
	return len(b.head.buf) > 0 || b.head != b.tail || b.closed
}

// idleLoop is a loop goroutine that may end while it has nothing to do.
// The loop calls park where it would wait for work: if ready reports no
// work (ready runs under the idleLoop's lock), the loop returns and wake
// runs it again on a new goroutine. A producer makes its work visible to
// ready first and then calls wake: whichever of park and wake takes the
// lock second sees the other's effect, so no work is missed.
type idleLoop struct {
	mu     sync.Mutex
	parked bool
	run    func()
	// want counts events a ready func cannot see otherwise (sends on
	// startKex, which is unbuffered).
	want int
}

func (l *idleLoop) park(ready func() bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.run == nil || l.want > 0 || ready() {
		return false
	}
	l.parked = true
	return true
}

// claim is wake for a caller that runs the loop itself: it returns the
// loop's func if the loop was parked, which the caller must then run.
func (l *idleLoop) claim() func() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.parked {
		return nil
	}
	l.parked = false
	return l.run
}

func (l *idleLoop) wake() {
	l.mu.Lock()
	if !l.parked {
		l.mu.Unlock()
		return
	}
	l.parked = false
	run := l.run
	l.mu.Unlock()
	runLoop(run)
}

// expect counts an event that wakes the loop; done uncounts it once the
// loop took it.
func (l *idleLoop) expect() {
	l.mu.Lock()
	l.want++
	l.mu.Unlock()
	l.wake()
}

func (l *idleLoop) done() {
	l.mu.Lock()
	l.want--
	l.mu.Unlock()
}

// idleLoops is the parking state of a handshakeTransport whose conn is a
// readNotifier.
type idleLoops struct {
	conn           readNotifier
	read, kex, mux idleLoop
	readDone       atomic.Bool // incoming is closed
	// muxRuns is set once the mux reads the packets: the reader parks
	// only then, not between the handshake's packets (each park and wake
	// costs a new goroutine: a handshake is not idle).
	muxRuns atomic.Bool
}

// setupIdleLoops enables parking when t's conn is a readNotifier. It is
// called before the loops start.
func (t *handshakeTransport) setupIdleLoops() {
	tr, ok := t.conn.(*transport)
	if !ok {
		return
	}
	n, ok := tr.Closer.(readNotifier)
	if !ok {
		return
	}
	tr.lazyBuffers(tr.Closer.(io.ReadWriter))
	t.incoming = make(chan []byte, parkedChanSize) // no goroutine runs yet
	il := &idleLoops{conn: n}
	il.read.run = func() { t.readLoopFrom(false) }
	il.kex.run = t.kexLoop
	// il.mux.run is set by the mux (newMux).
	t.idle = il
	n.SetDataNotify(il.read.wake)
}

// parkRead is called by the reader between packets: it parks once the
// handshake is done (the mux runs) and nothing is buffered or queued.
func (t *handshakeTransport) parkRead() bool {
	il := t.idle
	if il == nil || t.sessionID == nil || !il.muxRuns.Load() {
		return false
	}
	tr := t.conn.(*transport)
	return il.read.park(func() bool {
		return tr.bufReader != nil && tr.bufReader.Buffered() > 0 || il.conn.Readable()
	})
}

// parkKex is called by kexLoop where it waits for the next key exchange.
func (t *handshakeTransport) parkKex() bool {
	il := t.idle
	if il == nil || t.sessionID == nil {
		return false
	}
	return il.kex.park(func() bool { return len(t.requestKex) > 0 })
}

// parkMux is called by the mux loop before it reads a packet.
func (m *mux) parkMux() bool {
	t, ok := m.conn.(*handshakeTransport)
	if !ok || t.idle == nil {
		return false
	}
	il := t.idle
	return il.mux.park(func() bool { return len(t.incoming) > 0 || il.readDone.Load() })
}

// parkedChanSize is the capacity of the queues of a session that parks
// (chanSize, 16, elsewhere): one per forwarded connection, it mostly has
// nothing queued, and 16 pointers or slices per queue cost it about a
// kilobyte.
const parkedChanSize = 4

// chanSize is the capacity of the queues of m's channels.
func (m *mux) chanSize() int {
	if m.parked {
		return parkedChanSize
	}
	return chanSize
}

// setMuxLoop lets the idle mux loop be run again and gives a parking
// session smaller queues (no goroutine runs yet).
func (m *mux) setMuxLoop() {
	if t, ok := m.conn.(*handshakeTransport); ok && t.idle != nil {
		m.parked = true
		m.incomingChannels = make(chan NewChannel, parkedChanSize)
		m.incomingRequests = make(chan *Request, parkedChanSize)
		t.idle.mux.mu.Lock()
		t.idle.mux.run = m.loop
		t.idle.mux.mu.Unlock()
		t.idle.muxRuns.Store(true)
	}
}

// The wakers; no-ops without parking.

// pushed is called by the reader after it queued a packet: it returns the
// mux loop if it was parked, for the reader to run once it parks itself,
// or at once on a new goroutine if it reads on (one goroutine instead of
// two for a lone packet, with a stack the reader already grew).
func (il *idleLoops) pushed() func() {
	if il == nil {
		return nil
	}
	return il.mux.claim()
}

func (il *idleLoops) closedIncoming() {
	if il != nil {
		il.readDone.Store(true)
		il.mux.wake()
	}
}

func (il *idleLoops) kexRequested() {
	if il != nil {
		il.kex.wake()
	}
}

func (il *idleLoops) kexExpect() {
	if il != nil {
		il.kex.expect()
	}
}

func (il *idleLoops) kexTaken() {
	if il != nil {
		il.kex.done()
	}
}

// Pooled transport buffers (for a readNotifier conn): the reader's is
// taken for a packet and given back when nothing is left in it, the
// writer's for a packet (connectionState.writePacket flushes each).
var (
	bufReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}
	bufWriters = sync.Pool{New: func() any { return bufio.NewWriter(nil) }}
)

// lazyBuffers drops the transport's own bufio buffers for pooled ones.
func (t *transport) lazyBuffers(rw io.ReadWriter) {
	t.lazyRW = rw
	t.bufReader, t.bufWriter = nil, nil
}

// takeReader makes sure t.bufReader is set.
func (t *transport) takeReader() {
	if t.lazyRW != nil && t.bufReader == nil {
		r := bufReaders.Get().(*bufio.Reader)
		r.Reset(t.lazyRW)
		t.bufReader = r
	}
}

// releaseReader gives t.bufReader back once it holds nothing.
func (t *transport) releaseReader() {
	if t.lazyRW != nil && t.bufReader != nil && t.bufReader.Buffered() == 0 {
		r := t.bufReader
		t.bufReader = nil
		r.Reset(nil)
		bufReaders.Put(r)
	}
}

// writerFor returns the writer for one packet and a func that gives it
// back.
func (t *transport) writerFor() (*bufio.Writer, func()) {
	if t.bufWriter != nil {
		return t.bufWriter, func() {}
	}
	w := bufWriters.Get().(*bufio.Writer)
	w.Reset(t.lazyRW)
	return w, func() {
		w.Reset(nil)
		bufWriters.Put(w)
	}
}

// Packet scratch buffers of the ciphers and of a channel's writes: a
// buffer of keptScratch bytes or less is kept for the next packet (the
// common small packet allocates nothing); a larger one comes from the
// packet pools and goes back after the packet, so that a connection that
// once moved bulk data does not keep a 255 KiB buffer per direction while
// it is idle, nor one of a kilobyte or two for its handshake's packets.
const keptScratch = 256

// scratchBuf returns a buffer of length n: b when it has room, else a new
// small one or a pooled one.
func scratchBuf(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	if n <= keptScratch {
		return make([]byte, n)
	}
	return getPacketBuf(max(n, pooledMin))[:n]
}

// releaseScratch returns b to its pool if it came from one (and then nil),
// else b, to be kept.
func releaseScratch(b []byte) []byte {
	if cap(b) < pooledMin {
		return b
	}
	putPacketBuf(b)
	return nil
}

// readBufReleaser is a packetCipher whose readCipherPacket returns a
// packet in a scratch buffer, given back once the transport copied it.
type readBufReleaser interface{ releaseReadBuf() }

func (c *gcmCipher) releaseReadBuf()              { c.buf = releaseScratch(c.buf) }
func (c *chacha20Poly1305Cipher) releaseReadBuf() { c.buf = releaseScratch(c.buf) }

// keptBuf and keepBuf are a channel's small write buffer for an extended
// data code: an array for the data stream and stderr instead of upstream's
// map (a map's first entry costs a few hundred bytes per channel); other
// codes keep none.
func (ch *channel) keptBuf(code uint32) []byte {
	if code < uint32(len(ch.packetPool)) {
		return ch.packetPool[code]
	}
	return nil
}

func (ch *channel) keepBuf(code uint32, b []byte) {
	if code < uint32(len(ch.packetPool)) {
		ch.packetPool[code] = b
	}
}

// runLoop runs a loop that was parked on a worker goroutine: an idle one
// if there is, else a new one. A worker waits idleWorkerTime for more
// before it ends. Started afresh for every message, a loop would grow a
// new goroutine's stack each time (the reader's path needs more than the
// starting 2 KiB); a worker keeps the stack it grew while the process is
// busy, and a quiet process keeps no worker.
func runLoop(f func()) {
	select {
	case loopWork <- f:
	default:
		go loopWorker(f)
	}
}

var loopWork = make(chan func())

const idleWorkerTime = 50 * time.Millisecond

func loopWorker(f func()) {
	t := time.NewTimer(idleWorkerTime)
	defer t.Stop()
	for {
		f()
		t.Reset(idleWorkerTime)
		select {
		case f = <-loopWork:
		case <-t.C:
			return
		}
	}
}
