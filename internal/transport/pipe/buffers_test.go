package pipe_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/transport/pipe"
)

// opaque hides the concrete type of a connection (and so its raw socket),
// like an SSH channel or a WebSocket: Join reads it through its small
// buffer first.
type opaque struct{ net.Conn }

func (o opaque) CloseWrite() error { return o.Conn.(*net.TCPConn).CloseWrite() }

// TestJoinMessagesAtBufferBoundaries sends request/response messages whose
// sizes sit on and around the copy buffers' sizes, each only after the
// previous one arrived in full: a copy that waited for more bytes before
// passing on what it had would hang here.
func TestJoinMessagesAtBufferBoundaries(t *testing.T) {
	sizes := []int{1, pipe.SmallBufSize - 1, pipe.SmallBufSize, pipe.SmallBufSize + 1,
		pipe.BufSize - 1, pipe.BufSize, pipe.BufSize + 1, 3*pipe.BufSize + 7,
		pipe.BigBufSize - 1, pipe.BigBufSize, pipe.BigBufSize + 1, pipe.BufSize + pipe.BigBufSize,
		pipe.BufSize + pipe.BigBufSize + 1, 2*pipe.BigBufSize + pipe.BufSize + 3, 5}
	for _, tc := range []struct {
		name string
		wrap func(*net.TCPConn) io.ReadWriteCloser
	}{
		{"socket", func(c *net.TCPConn) io.ReadWriteCloser { return c }},
		{"opaque", func(c *net.TCPConn) io.ReadWriteCloser { return opaque{c} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, a := tcpPair(t)
			b, server := tcpPair(t)
			res := join(t, context.Background(), tc.wrap(a), tc.wrap(b), nil)
			for _, n := range sizes {
				msg := randBytes(t, n)
				if _, err := client.Write(msg); err != nil {
					t.Fatal(err)
				}
				got := make([]byte, n)
				if _, err := io.ReadFull(server, got); err != nil {
					t.Fatalf("server reading %d bytes: %v", n, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes a->b corrupted", n)
				}
				if _, err := server.Write(got); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(client, got); err != nil {
					t.Fatalf("client reading %d bytes: %v", n, err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes b->a corrupted", n)
				}
			}
			client.CloseWrite()
			server.CloseWrite()
			if r := wait(t, res); r.err != nil {
				t.Fatalf("Join: %v", r.err)
			}
		})
	}
}

// TestJoinIdleHoldsNoPooledBuffer: after a bulk transfer in both
// directions, an open but quiet connection gives its pooled buffers back.
func TestJoinIdleHoldsNoPooledBuffer(t *testing.T) {
	// Not parallel: HeldBuffers counts every Join in the process.
	for _, wrap := range []func(*net.TCPConn) io.ReadWriteCloser{
		func(c *net.TCPConn) io.ReadWriteCloser { return c },
		func(c *net.TCPConn) io.ReadWriteCloser { return opaque{c} },
	} {
		client, a := tcpPair(t)
		b, server := tcpPair(t)
		res := join(t, context.Background(), wrap(a), wrap(b), nil)
		bulk := randBytes(t, 4<<20)
		for _, dir := range [][2]*net.TCPConn{{client, server}, {server, client}} {
			go func() { _, _ = dir[0].Write(bulk) }()
			if _, err := io.ReadFull(dir[1], make([]byte, len(bulk))); err != nil {
				t.Fatal(err)
			}
		}
		// The copies put their buffers back right after their last write,
		// which may be a moment after the bytes arrived.
		deadline := time.Now().Add(testTimeout)
		for pipe.HeldBuffers() != 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := pipe.HeldBuffers(); n != 0 {
			t.Fatalf("an idle connection holds %d pooled buffers", n)
		}
		client.CloseWrite()
		server.CloseWrite()
		if r := wait(t, res); r.err != nil {
			t.Fatalf("Join: %v", r.err)
		}
	}
}

// dataReaderConn is a destination that reads its source itself, as
// warren's SSH channels do (sshfork's ReadDataFrom); it records the
// largest read it was asked for.
type dataReaderConn struct {
	*net.TCPConn
	calls   atomic.Int64
	maxRead atomic.Int64
}

func (d *dataReaderConn) ReadDataFrom(r io.Reader, limit int) (int, error, error) {
	d.calls.Add(1)
	if int64(limit) > d.maxRead.Load() {
		d.maxRead.Store(int64(limit))
	}
	buf := make([]byte, limit)
	n, rerr := r.Read(buf)
	if n > 0 {
		if _, werr := d.Write(buf[:n]); werr != nil {
			return 0, rerr, werr
		}
	}
	return n, rerr, nil
}

// TestJoinIntoDataReader: a copy from a socket into a dataReader lets it
// read the socket itself, in copy's sizes, messages of every size arrive
// whole, and EOF still half-closes.
func TestJoinIntoDataReader(t *testing.T) {
	t.Parallel()
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	d := &dataReaderConn{TCPConn: b}
	res := join(t, context.Background(), a, d, nil)
	for _, n := range []int{1, pipe.BufSize, pipe.BufSize + 1, 3*pipe.BigBufSize + 5, 7} {
		msg := randBytes(t, n)
		if _, err := client.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, n)
		if _, err := io.ReadFull(server, got); err != nil {
			t.Fatalf("server reading %d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes a->b corrupted", n)
		}
		// And back, through the ordinary copy.
		if _, err := server.Write(got); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, got); err != nil {
			t.Fatalf("client reading %d bytes: %v", n, err)
		}
	}
	if d.calls.Load() == 0 {
		t.Fatal("the copy into the dataReader did not use ReadDataFrom")
	}
	if m := d.maxRead.Load(); m > pipe.BigBufSize {
		t.Errorf("largest read asked for %d bytes, more than %d", m, pipe.BigBufSize)
	}
	client.CloseWrite()
	if _, err := io.ReadAll(server); err != nil {
		t.Fatalf("server after EOF: %v", err)
	}
	server.CloseWrite()
	if r := wait(t, res); r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
}
