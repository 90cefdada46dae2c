package wsconn

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net"
	"testing"
)

// writeRecorder is a net.Conn that records each Write.
type writeRecorder struct {
	net.Conn
	writes [][]byte
}

func (w *writeRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, append([]byte(nil), p...))
	return len(p), nil
}

// writev records buffers written together as one write.
func (w *writeRecorder) writev(b net.Buffers) error {
	w.writes = append(w.writes, bytes.Join(b, nil))
	return nil
}

// frame builds a WebSocket frame header for a payload of n bytes, followed
// by the payload.
func frame(n int, masked bool, fill byte) []byte {
	var h []byte
	b1 := byte(0)
	if masked {
		b1 = 0x80
	}
	switch {
	case n > 0xffff:
		h = append([]byte{0x82, b1 | 127}, binary.BigEndian.AppendUint64(nil, uint64(n))...)
	case n > 125:
		h = append([]byte{0x82, b1 | 126}, binary.BigEndian.AppendUint16(nil, uint16(n))...)
	default:
		h = []byte{0x82, b1 | byte(n)}
	}
	if masked {
		h = append(h, 1, 2, 3, 4)
	}
	return append(h, bytes.Repeat([]byte{fill}, n)...)
}

// checkCoalesced feeds stream (the frames of sizes) to a coalescer in the
// pieces cuts gives, and checks that the bytes pass unchanged and that
// small pieces are collected up to the end of their frame.
func checkCoalesced(t *testing.T, sizes []int, masked bool, cuts func(int) int) {
	t.Helper()
	var stream []byte
	var ends []int // offsets where frames end
	for i, n := range sizes {
		stream = append(stream, frame(n, masked, byte(i))...)
		ends = append(ends, len(stream))
	}
	rec := &writeRecorder{}
	c := &coalescer{Conn: rec, writev: rec.writev}
	c.on.Store(true)
	for rest := stream; len(rest) > 0; {
		k := min(max(1, cuts(len(rest))), len(rest))
		if n, err := c.Write(rest[:k]); n != k || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		rest = rest[k:]
	}
	if !bytes.Equal(bytes.Join(rec.writes, nil), stream) {
		t.Fatal("bytes changed on the way through")
	}
	isEnd := map[int]bool{}
	for _, e := range ends {
		isEnd[e] = true
	}
	off := 0
	for _, w := range rec.writes {
		off += len(w)
		// Mid-frame writes only carry a large piece (written in place)
		// or a full buffer.
		if !isEnd[off] && len(w) < directWrite {
			t.Fatalf("a %d-byte write ends inside a frame (offset %d)", len(w), off)
		}
	}
	if c.buf != nil {
		t.Fatal("bytes left pending after the last frame")
	}
}

func TestCoalescerWholeFrames(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 4096, 32 << 10, 65535, 65536, 70000, maxCoalesce + 100, 3}
	for _, masked := range []bool{false, true} {
		checkCoalesced(t, sizes, masked, func(int) int { return 4096 })                  // coder/websocket's bufio
		checkCoalesced(t, sizes, masked, func(n int) int { return min(n, 4100) })        // a server: header+4 KiB, then the rest
		checkCoalesced(t, sizes, masked, func(int) int { return 1 })                     // byte at a time
		checkCoalesced(t, sizes, masked, func(n int) int { return n })                   // all at once
		checkCoalesced(t, sizes, masked, func(int) int { return rand.IntN(9000) + 1 })   // anything
		checkCoalesced(t, sizes, masked, func(int) int { return rand.IntN(14) + 1 })     // split headers
		checkCoalesced(t, nil, masked, func(int) int { return 1 })                       // nothing
		checkCoalesced(t, []int{10, 20, 30}, masked, func(int) int { return 1 << 20 })   // several per write
		checkCoalesced(t, []int{200 << 10}, masked, func(int) int { return 100 << 10 })  // large
		checkCoalesced(t, []int{600 << 10, 5}, masked, func(int) int { return 4 << 10 }) // oversized
	}
}

func TestCoalescerOffPassesThrough(t *testing.T) {
	rec := &writeRecorder{}
	c := &coalescer{Conn: rec}
	for _, p := range []string{"GET / HTTP/1.1\r\n", "\r\n"} {
		c.Write([]byte(p))
	}
	if len(rec.writes) != 2 {
		t.Fatalf("%d writes while off, want 2", len(rec.writes))
	}
}

// FuzzCoalescer: whatever bytes come (valid frames or not) pass through
// unchanged and in order.
func FuzzCoalescer(f *testing.F) {
	f.Add(frame(5, true, 1), uint8(3))
	f.Add(append(frame(300, false, 2), frame(70000, true, 3)...), uint8(200))
	f.Add([]byte{0x82, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		rec := &writeRecorder{}
		c := &coalescer{Conn: rec}
		c.on.Store(true)
		step := int(cut) + 1
		for rest := data; len(rest) > 0; {
			k := min(step, len(rest))
			if n, err := c.Write(rest[:k]); n != k || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
			rest = rest[k:]
		}
		_ = c.flush()
		if !bytes.Equal(bytes.Join(rec.writes, nil), data) {
			t.Fatal("bytes changed on the way through")
		}
	})
}
