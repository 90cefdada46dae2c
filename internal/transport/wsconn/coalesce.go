package wsconn

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// coalescer sits between coder/websocket's client side and the TCP
// connection and turns each WebSocket frame into one write.
//
// Why: a client masks what it sends, and coder/websocket masks through
// its 4 KiB bufio.Writer, flushing every 4 KiB: a 32 KiB frame (one SSH
// packet) cost eight write system calls, which was most of tunnel-host's
// and tunnel-client's CPU under load. The coalescer collects the writes of
// a frame, whose length it reads from the frame header, and writes the
// frame once it is complete. Frames arrive whole and in order (the library
// writes one frame at a time), so buffering never delays bytes past the end
// of the frame they belong to.
//
// It starts switched off, passing the HTTP upgrade through untouched, and
// is switched on once the handshake is done. Frames larger than
// maxCoalesce are passed on in maxCoalesce pieces.
type coalescer struct {
	net.Conn
	on atomic.Bool

	mu  sync.Mutex
	buf *[]byte // pending bytes, from coalescePool; nil when empty
	// left is how many more bytes the frame being collected needs; 0 at a
	// frame boundary. hdr collects a frame header split across writes.
	left int64
	hdr  []byte
	// writev, if set, replaces net.Buffers.WriteTo (tests).
	writev func(net.Buffers) error
}

// directWrite is the piece size from which a piece is written from the
// caller's slice instead of being copied.
const directWrite = 16 << 10

const maxCoalesce = 256 << 10

// coalesceCap is the capacity of coalescePool's buffers: a whole frame up
// to maxCoalesce (an SSH packet of the largest size relay legs allow is one
// frame) plus the piece that crosses it, so that appending never regrows a
// buffer, which would then be too large to pool and cost an allocation per
// frame.
const coalesceCap = maxCoalesce + directWrite

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceCap); return &b }}

func (c *coalescer) Write(p []byte) (int, error) {
	if !c.on.Load() {
		return c.Conn.Write(p)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	total := len(p)
	for len(p) > 0 {
		if c.left == 0 {
			// At a frame boundary: read the header's length.
			need := len(c.hdr)
			c.hdr = append(c.hdr, p[:min(len(p), maxFrameHeader-need)]...)
			size, ok := frameSize(c.hdr)
			if !ok {
				if len(c.hdr) >= maxFrameHeader {
					// Cannot happen with a valid header; pass bytes on as
					// they come rather than guess.
					c.hdr = c.hdr[:0]
					c.left = -1
				} else {
					c.append(p)
					return total, nil
				}
			} else {
				c.left = size - int64(need)
			}
			c.hdr = c.hdr[:0]
		}
		if c.left < 0 {
			// Lost track of framing: pass through from now on.
			if err := c.flush(); err != nil {
				return 0, err
			}
			c.on.Store(false)
			if _, err := c.Conn.Write(p); err != nil {
				return 0, err
			}
			return total, nil
		}
		k := min(int64(len(p)), c.left)
		c.left -= k
		if c.left == 0 || (k >= directWrite && !c.overTLS()) {
			// Send what is pending and this piece together, without
			// copying the piece: a server writes most of a frame's
			// payload in one large piece.
			if err := c.flushWith(p[:k]); err != nil {
				return 0, err
			}
		} else {
			c.append(p[:k])
			if len(*c.buf) >= maxCoalesce {
				if err := c.flush(); err != nil {
					return 0, err
				}
			}
		}
		p = p[k:]
	}
	return total, nil
}

func (c *coalescer) append(p []byte) {
	if c.buf == nil {
		c.buf = coalescePool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
}

// flush writes the pending bytes and gives the buffer back.
func (c *coalescer) flush() error { return c.flushWith(nil) }

// flushWith writes the pending bytes followed by p, with one writev where
// the connection supports it, and gives the buffer back.
func (c *coalescer) flushWith(p []byte) error {
	var err error
	switch {
	case c.buf == nil && len(p) == 0:
		return nil
	case c.buf == nil:
		err = c.writeBuffers(net.Buffers{p})
	case len(p) == 0:
		err = c.writeBuffers(net.Buffers{*c.buf})
	default:
		err = c.writeBuffers(net.Buffers{*c.buf, p})
	}
	if b := c.buf; b != nil {
		c.buf = nil
		if cap(*b) <= coalesceCap {
			*b = (*b)[:0]
			coalescePool.Put(b)
		}
	}
	return err
}

// overTLS reports whether the coalescer sits above TLS, where a piece is
// better copied: one Write of a whole frame fills TLS records, where a
// writev of two slices would cost a record each.
func (c *coalescer) overTLS() bool {
	_, ok := c.Conn.(*tls.Conn)
	return ok
}

func (c *coalescer) writeBuffers(b net.Buffers) error {
	if len(b) > 1 && c.overTLS() {
		// Whole frames only here: the last piece completes one.
		*c.buf = append(*c.buf, b[1]...)
		b = b[:1]
		b[0] = *c.buf
	}
	if c.writev != nil {
		return c.writev(b)
	}
	_, err := b.WriteTo(c.Conn)
	return err
}

// maxFrameHeader is the longest WebSocket frame header: 2 bytes, an 8-byte
// extended length and a 4-byte masking key (RFC 6455 §5.2).
const maxFrameHeader = 14

// frameSize returns the total length (header and payload) of the frame
// whose header starts b, or false if b does not hold the whole header yet.
func frameSize(b []byte) (int64, bool) {
	if len(b) < 2 {
		return 0, false
	}
	hl := 2
	if b[1]&0x80 != 0 {
		hl += 4
	}
	var n int64
	switch l := b[1] & 0x7f; l {
	case 126:
		hl += 2
		if len(b) < 4 {
			return 0, false
		}
		n = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		hl += 8
		if len(b) < 10 {
			return 0, false
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u > 1<<62 {
			return 0, false
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	if len(b) < hl {
		return 0, false
	}
	return int64(hl) + n, true
}

// Accept is websocket.Accept with the server's frames coalesced too: the
// hijacked connection is wrapped in a coalescer, so that a frame, which
// coder/websocket writes as its header and first 4 KiB and then the rest,
// leaves in one write (one TLS record run, one system call).
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*websocket.Conn, error) {
	return websocket.Accept(coalescingWriter{w}, r, opts)
}

// coalescingWriter hands coder/websocket a coalescing connection when it
// hijacks.
type coalescingWriter struct{ http.ResponseWriter }

func (w coalescingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w coalescingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	// The 101 response may still sit in the server's buffer: send it as
	// is, then frames go through the coalescer.
	if err := brw.Writer.Flush(); err != nil {
		_ = c.Close()
		return nil, nil, err
	}
	co := &coalescer{Conn: c}
	co.on.Store(true)
	return co, bufio.NewReadWriter(brw.Reader, bufio.NewWriter(co)), nil
}
