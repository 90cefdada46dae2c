package pipe_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"runtime"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/pipe"
)

// sshChannels returns n channels pairs of one SSH connection over loopback
// TCP: near[i] is opened by the client, far[i] is its accepted end. The
// connection is closed when the test ends.
func sshChannels(t *testing.T, n int) (near, far []ssh.Channel) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cconn, sconn := tcpPair(t)
	// No deadline: the channels stay idle on purpose.
	cconn.SetDeadline(time.Time{})
	sconn.SetDeadline(time.Time{})
	type accepted struct {
		chans <-chan ssh.NewChannel
		conn  *ssh.ServerConn
		err   error
	}
	acc := make(chan accepted, 1)
	go func() {
		cfg := &ssh.ServerConfig{NoClientAuth: true}
		cfg.AddHostKey(hostKey)
		sc, chans, reqs, err := ssh.NewServerConn(sconn, cfg)
		if err == nil {
			go ssh.DiscardRequests(reqs)
		}
		acc <- accepted{chans, sc, err}
	}()
	cc, cchans, creqs, err := ssh.NewClientConn(cconn, "pipe", &ssh.ClientConfig{
		User: "warren", HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := ssh.NewClient(cc, cchans, creqs)
	a := <-acc
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() {
		client.Close()
		a.conn.Close()
		a.conn.Wait()
	})
	for range n {
		farCh := make(chan ssh.Channel, 1)
		go func() {
			nc := <-a.chans
			ch, reqs, err := nc.Accept()
			if err != nil {
				t.Error(err)
				farCh <- nil
				return
			}
			ssh.RefuseRequests(ch, reqs)
			farCh <- ch
		}()
		ch, reqs, err := client.OpenChannel("stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		ssh.RefuseRequests(ch, reqs)
		f := <-farCh
		if f == nil {
			t.FailNow()
		}
		near, far = append(near, ch), append(far, f)
	}
	return near, far
}

// settleGoroutines waits (bounded) until at most n goroutines run and
// returns how many do.
func settleGoroutines(n int) int {
	deadline := time.Now().Add(testTimeout)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return runtime.NumGoroutine()
}

// TestJoinAsyncChannelsIdleWithoutGoroutines: a splice of two SSH channels
// (the relay's V2 bridge) holds no goroutine while it is idle, moves bytes
// both ways when they come, carries half-close, and reports at the end.
func TestJoinAsyncChannelsIdleWithoutGoroutines(t *testing.T) {
	near, far := sshChannels(t, 2)
	before := runtime.NumGoroutine()
	type result struct {
		st  pipe.Stats
		err error
	}
	res := make(chan result, 1)
	pipe.JoinAsync(context.Background(), far[0], far[1], nil, func(st pipe.Stats, err error) { res <- result{st, err} })
	if n := settleGoroutines(before); n > before {
		t.Fatalf("an idle splice of two channels keeps %d goroutines", n-before)
	}
	a, b := near[0], near[1]
	for i, msg := range [][]byte{[]byte("ping"), randBytes(t, 1<<20)} {
		for _, dir := range [][2]ssh.Channel{{a, b}, {b, a}} {
			go func() { _, _ = dir[0].Write(msg) }()
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(dir[1], got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("message %d: %v", i, err)
			}
		}
	}
	if n := settleGoroutines(before); n > before {
		t.Fatalf("after traffic, an idle splice keeps %d goroutines", n-before)
	}
	// Half-close a's way; b still answers, then closes its way too.
	if err := a.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(io.LimitReader(b, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("late")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(a, got); err != nil || string(got) != "late" {
		t.Fatalf("after half-close: %q, %v", got, err)
	}
	if err := b.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-res:
		want := int64(4 + 1<<20)
		if r.err != nil || r.st.AToB != want || r.st.BToA != want+4 {
			t.Fatalf("JoinAsync: %+v, %v; want %d and %d bytes", r.st, r.err, want, want+4)
		}
	case <-time.After(testTimeout):
		t.Fatal("JoinAsync did not finish")
	}
}

// TestJoinChannelToTCP: Join between an SSH channel and a socket (the
// tunnel host's and client's splice) runs the channel's way only while it
// has data: one goroutine, the caller's, while idle.
func TestJoinChannelToTCP(t *testing.T) {
	near, far := sshChannels(t, 1)
	client, a := tcpPair(t)
	before := runtime.NumGoroutine()
	res := make(chan joinResult, 1)
	go func() {
		st, err := pipe.Join(context.Background(), far[0], a, nil)
		res <- joinResult{st, err}
	}()
	if n := settleGoroutines(before + 1); n > before+1 {
		t.Fatalf("an idle channel-to-socket Join runs %d goroutines, want 1", n-before)
	}
	msg := randBytes(t, 300<<10)
	go func() { _, _ = near[0].Write(msg) }()
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("channel to socket: %v", err)
	}
	go func() { _, _ = client.Write(msg) }()
	if _, err := io.ReadFull(near[0], got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("socket to channel: %v", err)
	}
	// The channel's end reaches the socket as EOF (half-close), and the
	// socket's then ends the splice.
	if err := near[0].CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if n, err := client.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("socket after the channel's EOF: %d bytes, %v", n, err)
	}
	client.CloseWrite()
	r := wait(t, res)
	if r.err != nil || r.stats.AToB != int64(len(msg)) || r.stats.BToA != int64(len(msg)) {
		t.Fatalf("Join: %+v, %v; want %d bytes each way", r.stats, r.err, len(msg))
	}
}

// TestJoinAsyncCanceled: ctx ends an idle asynchronous splice.
func TestJoinAsyncCanceled(t *testing.T) {
	_, far := sshChannels(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	pipe.JoinAsync(ctx, far[0], far[1], nil, func(_ pipe.Stats, err error) { res <- err })
	cancel()
	select {
	case err := <-res:
		if err != context.Canceled {
			t.Fatalf("JoinAsync after cancel: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("JoinAsync did not end on cancel")
	}
}
