package pipe_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/transport/pipe"
)

// testTimeout bounds every test so that a bug shows up as a failure, not a hang.
const testTimeout = 5 * time.Second

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	type accepted struct {
		c   *net.TCPConn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- accepted{c, err}
	}()
	client, err = net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	acc := <-ch
	if acc.err != nil {
		client.Close()
		t.Fatal(acc.err)
	}
	server = acc.c
	// Deadlines are a safety net against hangs, not timing assertions.
	deadline := time.Now().Add(testTimeout)
	client.SetDeadline(deadline)
	server.SetDeadline(deadline)
	t.Cleanup(func() {
		client.Close()
		server.Close()
	})
	return client, server
}

// splice builds client <-> [a Join b] <-> server out of two TCP pairs and
// runs Join in the background. The returned channel yields Join's result.
type joinResult struct {
	stats pipe.Stats
	err   error
}

func splice(t *testing.T, ctx context.Context, opts *pipe.Options) (client, server *net.TCPConn, res <-chan joinResult) {
	t.Helper()
	client, a := tcpPair(t)
	b, server := tcpPair(t)
	return client, server, join(t, ctx, a, b, opts)
}

// join runs Join in the background and makes sure it has returned before
// the test ends, so that no goroutine outlives the test.
func join(t *testing.T, ctx context.Context, a, b io.ReadWriteCloser, opts *pipe.Options) <-chan joinResult {
	ch := make(chan joinResult, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		st, err := pipe.Join(ctx, a, b, opts)
		ch <- joinResult{st, err}
	}()
	t.Cleanup(func() {
		a.Close()
		b.Close()
		<-done
	})
	return ch
}

func wait(t *testing.T, ch <-chan joinResult) joinResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("Join did not return")
		return joinResult{}
	}
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendAndReceive writes out and half-closes c while reading everything c
// receives until EOF.
func sendAndReceive(c *net.TCPConn, out []byte) ([]byte, error) {
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(out)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	in, rerr := io.ReadAll(c)
	if err := <-werr; err != nil {
		return in, err
	}
	return in, rerr
}

func TestJoinBothWays(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	var live [2]atomic.Int64
	opts := &pipe.Options{OnCopy: func(d pipe.Direction, n int) { live[d].Add(int64(n)) }}
	client, server, res := splice(t, ctx, opts)

	// Big enough to need many buffer-fulls and to fill socket buffers, so
	// both directions must really run concurrently.
	up := randBytes(t, 4<<20)
	down := randBytes(t, 3<<20)

	var wg sync.WaitGroup
	var gotUp, gotDown []byte
	var errUp, errDown error
	wg.Add(2)
	go func() { defer wg.Done(); gotDown, errDown = sendAndReceive(client, up) }()
	go func() { defer wg.Done(); gotUp, errUp = sendAndReceive(server, down) }()
	wg.Wait()

	if errUp != nil || errDown != nil {
		t.Fatalf("server side: %v, client side: %v", errUp, errDown)
	}
	if !bytes.Equal(gotUp, up) {
		t.Errorf("server got %d bytes, corrupted or short (want %d)", len(gotUp), len(up))
	}
	if !bytes.Equal(gotDown, down) {
		t.Errorf("client got %d bytes, corrupted or short (want %d)", len(gotDown), len(down))
	}

	r := wait(t, res)
	if r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
	want := pipe.Stats{AToB: int64(len(up)), BToA: int64(len(down))}
	if r.stats != want {
		t.Errorf("Stats = %+v, want %+v", r.stats, want)
	}
	if got := (pipe.Stats{AToB: live[pipe.AToB].Load(), BToA: live[pipe.BToA].Load()}); got != want {
		t.Errorf("OnCopy totals = %+v, want %+v", got, want)
	}
}

func TestJoinHalfClose(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, server, res := splice(t, ctx, nil)

	// Request, then half-close: the server only answers after EOF.
	if _, err := client.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	req, err := io.ReadAll(server)
	if err != nil {
		t.Fatalf("server read: %v", err)
	}
	if string(req) != "request" {
		t.Fatalf("server got %q", req)
	}

	// The client's half-close must not have torn down the reply path.
	if _, err := server.Write([]byte("reply")); err != nil {
		t.Fatal(err)
	}
	if err := server.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(client)
	if err != nil {
		t.Fatalf("client read: %v", err)
	}
	if string(reply) != "reply" {
		t.Fatalf("client got %q", reply)
	}

	r := wait(t, res)
	if r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
	if want := (pipe.Stats{AToB: 7, BToA: 5}); r.stats != want {
		t.Errorf("Stats = %+v, want %+v", r.stats, want)
	}
}

func TestJoinLiveCounts(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	type event struct {
		dir pipe.Direction
		n   int
	}
	events := make(chan event, 1024)
	client, server, res := splice(t, ctx, &pipe.Options{
		OnCopy: func(d pipe.Direction, n int) { events <- event{d, n} },
	})

	// waitFor consumes OnCopy events until dir has reached want bytes.
	var seen [2]int64
	waitFor := func(dir pipe.Direction, want int64) {
		t.Helper()
		for seen[dir] < want {
			select {
			case e := <-events:
				seen[e.dir] += int64(e.n)
			case <-ctx.Done():
				t.Fatalf("%v: counted %d bytes, want %d", dir, seen[dir], want)
			}
		}
		if seen[dir] != want {
			t.Fatalf("%v: counted %d bytes, want %d", dir, seen[dir], want)
		}
	}
	running := func() {
		t.Helper()
		select {
		case r := <-res:
			t.Fatalf("Join returned early: %+v", r)
		default:
		}
	}

	// Each step sends a chunk and then pauses the producer: the counts
	// must be visible while the connection is still open.
	chunk := randBytes(t, 100<<10)
	buf := make([]byte, len(chunk))
	for i := 1; i <= 3; i++ {
		if _, err := client.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, buf); err != nil {
			t.Fatal(err)
		}
		waitFor(pipe.AToB, int64(i*len(chunk)))
		running()

		if _, err := server.Write(chunk[:1000]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf[:1000]); err != nil {
			t.Fatal(err)
		}
		waitFor(pipe.BToA, int64(i*1000))
		running()
	}

	client.CloseWrite()
	server.CloseWrite()
	r := wait(t, res)
	if r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
	if want := (pipe.Stats{AToB: seen[pipe.AToB], BToA: seen[pipe.BToA]}); r.stats != want {
		t.Errorf("Stats = %+v, OnCopy totals %+v", r.stats, want)
	}
}

func TestJoinContextCancelClosesBoth(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, server, res := splice(t, ctx, nil)

	// Some traffic first, so the cancel hits an established splice.
	if _, err := client.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(server, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}

	cancel()
	r := wait(t, res)
	if !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Join error = %v, want context.Canceled", r.err)
	}
	if want := (pipe.Stats{AToB: 1}); r.stats != want {
		t.Errorf("Stats = %+v, want %+v", r.stats, want)
	}
	// Both spliced connections were closed, which the outer ends see as EOF.
	for name, c := range map[string]net.Conn{"client": client, "server": server} {
		if n, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Errorf("%s read after cancel = %d, %v; want EOF", name, n, err)
		}
	}
}

func TestJoinErrorUnblocksOtherDirection(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	client, server, res := splice(t, ctx, nil)

	// A reset from the client makes Join's read from a fail. The b->a copy
	// is blocked reading from b and must be unblocked by Join closing b.
	if err := client.SetLinger(0); err != nil {
		t.Fatal(err)
	}
	client.Close()

	r := wait(t, res)
	var perr *pipe.Error
	if !errors.As(r.err, &perr) {
		t.Fatalf("Join error = %v (%T), want *pipe.Error", r.err, r.err)
	}
	if perr.Dir != pipe.AToB || perr.Op != "read" {
		t.Errorf("error = %v, want a failed read in direction a->b", perr)
	}
	if n, err := server.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("server read = %d, %v; want EOF", n, err)
	}
}

// noHalfClose hides CloseWrite, like a transport that cannot half-close.
type noHalfClose struct{ net.Conn }

func TestJoinWithoutCloseWriteCloses(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	client, a := tcpPair(t)
	b, server := tcpPair(t)
	res := join(t, ctx, a, noHalfClose{b}, nil)

	if _, err := client.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	client.CloseWrite()

	// b cannot be half-closed, so Join closes it: the server still gets
	// the data followed by EOF rather than waiting forever.
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "bye" {
		t.Fatalf("server read %q, %v; want \"bye\", nil", got, err)
	}
	r := wait(t, res)
	if r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
	if n, err := client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read = %d, %v; want EOF", n, err)
	}
}

func TestJoinCanceledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, res := splice(t, ctx, nil)
	if r := wait(t, res); !errors.Is(r.err, context.Canceled) {
		t.Fatalf("Join error = %v, want context.Canceled", r.err)
	}
}

func TestDirectionString(t *testing.T) {
	for d, want := range map[pipe.Direction]string{pipe.AToB: "a->b", pipe.BToA: "b->a", 7: "Direction(7)"} {
		if got := d.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(d), got, want)
		}
	}
}
