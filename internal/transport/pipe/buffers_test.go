package pipe_test

import (
	"bytes"
	"context"
	"io"
	"net"
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
