package ssh

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// notifyConn is a channel as a net.Conn that says when it has data, as
// warren's wrapper for nested sessions does.
type notifyConn struct{ *channel }

// plainConn is a channel as a net.Conn without Readable: its session
// does not park (the upstream behaviour), for comparison.
type plainConn struct{ Channel }

func (plainConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (plainConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (plainConn) SetDeadline(time.Time) error      { return nil }
func (plainConn) SetReadDeadline(time.Time) error  { return nil }
func (plainConn) SetWriteDeadline(time.Time) error { return nil }

// nestedConn wraps a channel for an inner session; noPark makes it a
// plainConn.
func nestedConn(ch Channel, noPark bool) net.Conn {
	if noPark {
		return plainConn{ch}
	}
	return notifyConn{ch.(*channel)}
}

func (notifyConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (notifyConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (notifyConn) SetDeadline(time.Time) error      { return nil }
func (notifyConn) SetReadDeadline(time.Time) error  { return nil }
func (notifyConn) SetWriteDeadline(time.Time) error { return nil }

// nestedPair runs an SSH session inside a channel of an outer session
// over loopback TCP, as an E2E stream does; the inner server echoes
// "echo" channels and refuses everything else with RefuseIncoming, the
// inner client refuses the server's requests and channels the same way.
// rekey is the inner client's RekeyThreshold (0: the default), cipher its
// only cipher ("": the default list). It returns the inner client, the
// inner server and the outer client's channel the inner session runs in.
func nestedPair(t testing.TB, rekey uint64, cipher string, kexinits *kexCounter) (client Conn, server *ServerConn, outer *channel) {
	return nestedPairConn(t, rekey, cipher, kexinits, false)
}

func nestedPairConn(t testing.TB, rekey uint64, cipher string, kexinits *kexCounter, noPark bool) (client Conn, server *ServerConn, outer *channel) {
	t.Helper()
	outerC, outerS := tcpPair(t)
	scfg := &ServerConfig{NoClientAuth: true}
	for _, s := range testSigners(t) {
		scfg.AddHostKey(s)
	}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	type res struct {
		c   *ServerConn
		err error
	}
	outerDone := make(chan res, 1)
	innerSrv := make(chan res, 1)
	wg.Go(func() {
		oc, chans, reqs, err := NewServerConn(outerS, scfg)
		outerDone <- res{oc, err}
		if err != nil {
			return
		}
		go DiscardRequests(reqs)
		nc, ok := <-chans
		if !ok {
			return
		}
		go func() {
			for nc := range chans {
				_ = nc.Reject(UnknownChannelType, "")
			}
		}()
		ch, creqs, err := nc.Accept()
		if err != nil {
			innerSrv <- res{nil, err}
			return
		}
		RefuseRequests(ch, creqs)
		sc, ichans, ireqs, err := NewServerConn(nestedConn(ch, noPark), scfg)
		innerSrv <- res{sc, err}
		if err != nil {
			return
		}
		// One echo channel, then the rest is refused from the reader.
		enc, ok := <-ichans
		if !ok {
			return
		}
		RefuseIncoming(sc, ichans, ireqs, "one channel")
		ech, ereqs, err := enc.Accept()
		if err != nil {
			return
		}
		RefuseRequests(ech, ereqs)
		wg.Go(func() {
			_, _ = io.Copy(ech, ech)
			_ = ech.CloseWrite()
		})
	})
	ocfg := &ClientConfig{User: "u", HostKeyCallback: InsecureIgnoreHostKey()}
	oc, ochans, oreqs, err := NewClientConn(outerC, "outer", ocfg)
	if err != nil {
		t.Fatalf("outer client: %v", err)
	}
	RefuseIncoming(oc, ochans, oreqs, "")
	r := <-outerDone
	if r.err != nil {
		t.Fatalf("outer server: %v", r.err)
	}
	t.Cleanup(func() { oc.Close(); r.c.Close() })
	och, ocreqs, err := oc.OpenChannel("stream", nil)
	if err != nil {
		t.Fatalf("outer channel: %v", err)
	}
	RefuseRequests(och, ocreqs)
	icfg := &ClientConfig{User: "u", HostKeyCallback: InsecureIgnoreHostKey()}
	icfg.RekeyThreshold = rekey
	if cipher != "" {
		icfg.Ciphers = []string{cipher}
	}
	if kexinits != nil {
		icfg.Rand = kexinits
	}
	ic, ichans, ireqs, err := NewClientConn(nestedConn(och, noPark), "inner", icfg)
	if err != nil {
		t.Fatalf("inner client: %v", err)
	}
	RefuseIncoming(ic, ichans, ireqs, "")
	s := <-innerSrv
	if s.err != nil {
		t.Fatalf("inner server: %v", s.err)
	}
	t.Cleanup(func() { ic.Close(); s.c.Close() })
	return ic, s.c, och.(*channel)
}

// kexCounter is a Config.Rand that counts the KEXINITs sent.
type kexCounter struct {
	mu sync.Mutex
	n  int
}

func (k *kexCounter) Read(p []byte) (int, error) {
	// The cookie is read by sendKexInit through io.ReadFull; padding
	// and keys are read elsewhere.
	pcs := make([]uintptr, 8)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "io.") && more {
			continue
		}
		if strings.HasSuffix(f.Function, ".(*handshakeTransport).sendKexInit") {
			k.mu.Lock()
			k.n++
			k.mu.Unlock()
		}
		break
	}
	return rand.Read(p)
}

func (k *kexCounter) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// loopCount counts the goroutines running each of a session's loops, and
// the idle workers (runLoop) as "worker".
func loopCount() map[string]int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		loop := false
		for _, l := range []string{"(*handshakeTransport).readLoop", "(*handshakeTransport).kexLoop", "(*mux).loop"} {
			if strings.Contains(g, l) {
				n[l]++
				loop = true
			}
		}
		if !loop && strings.Contains(g, ".loopWorker(") {
			n["worker"]++
		}
	}
	return n
}

// waitLoops waits until each loop runs on want goroutines (the outer
// session's) and no idle worker is left.
func waitLoops(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := loopCount()
		ok := len(n) == 3
		for l, c := range n {
			ok = ok && c == want && l != "worker"
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("loops: %v, want %d of each", n, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestNestedSessionParks: an idle session inside a channel keeps no
// goroutine (the outer session's two ends keep theirs: 2 of each loop),
// and wakes for data, requests, channel opens and key exchanges.
func TestNestedSessionParks(t *testing.T) {
	for _, c := range []string{CipherAES128GCM, CipherChaCha20Poly1305} {
		t.Run(c, func(t *testing.T) { testNestedSessionParks(t, c) })
	}
}

func testNestedSessionParks(t *testing.T, cipher string) {
	kexinits := &kexCounter{}
	ic, sc, och := nestedPair(t, 0, cipher, kexinits)
	ech, ereqs, err := ic.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open echo: %v", err)
	}
	RefuseRequests(ech, ereqs)
	roundTrip := func(data []byte) {
		t.Helper()
		errc := make(chan error, 1)
		go func() { _, err := ech.Write(data); errc <- err }()
		got := make([]byte, len(data))
		if _, err := io.ReadFull(ech, got); err != nil {
			t.Fatalf("read echo: %v", err)
		}
		if err := <-errc; err != nil {
			t.Fatalf("write: %v", err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("echo differs")
		}
	}
	roundTrip([]byte("hello"))
	// ech.Read's caller is this goroutine, not a loop: the inner
	// session's loops all park.
	waitLoops(t, 2)

	big := make([]byte, 3<<20)
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	roundTrip(big)
	waitLoops(t, 2)
	// What the idle session keeps: no transport buffer, no cipher or
	// channel write buffer above keptScratch (the locks order these
	// reads after the parked loops' writes).
	for _, c := range []Conn{ic, sc.Conn} {
		ht := c.(*connection).transport
		tr := ht.conn.(*transport)
		ht.idle.read.mu.Lock()
		rbuf, rc := tr.bufReader, tr.reader.packetCipher
		ht.idle.read.mu.Unlock()
		ht.mu.Lock()
		wbuf, wc := tr.bufWriter, tr.writer.packetCipher
		ht.mu.Unlock()
		if rbuf != nil || wbuf != nil {
			t.Errorf("idle transport keeps bufio buffers")
		}
		for _, pc := range []packetCipher{rc, wc} {
			var kept []byte
			switch pc := pc.(type) {
			case *gcmCipher:
				kept = pc.buf
			case *chacha20Poly1305Cipher:
				kept = pc.buf
			default:
				t.Fatalf("cipher %T", pc)
			}
			if cap(kept) > keptScratch {
				t.Errorf("idle %T keeps a %d-byte buffer", pc, cap(kept))
			}
		}
	}
	och.writeMu.Lock()
	kept := cap(och.packetPool[0])
	och.writeMu.Unlock()
	if kept > keptScratch {
		t.Errorf("the outer channel keeps a %d-byte write buffer", kept)
	}

	// A global request and a channel open, each refused from the
	// server's reader.
	if ok, _, err := ic.SendRequest("x", true, nil); ok || err != nil {
		t.Fatalf("global request: %v, %v", ok, err)
	}
	var oce *OpenChannelError
	if _, _, err := ic.OpenChannel("other", nil); !errors.As(err, &oce) || oce.Message != "one channel" {
		t.Fatalf("second channel: %v", err)
	}
	waitLoops(t, 2)

	// Key exchanges, started by either side while the other is parked
	// (the client's KEXINIT count grows either way).
	for i := range 3 {
		before := kexinits.count()
		ic.(*connection).transport.requestKeyExchange()
		roundTrip([]byte("after a client kex"))
		waitLoops(t, 2)
		sc.Conn.(*connection).transport.requestKeyExchange()
		roundTrip([]byte("after a server kex"))
		waitLoops(t, 2)
		if got := kexinits.count(); got != before+2 {
			t.Fatalf("round %d: %d KEXINITs sent, want %d", i, got, before+2)
		}
	}

	// Closing the parked session ends every loop.
	ech.Close()
	if err := ic.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	waitErr := make(chan error, 1)
	go func() { waitErr <- sc.Wait() }()
	select {
	case <-waitErr:
	case <-time.After(10 * time.Second):
		t.Fatal("the server session did not end")
	}
}

// TestNestedSessionRekeys: with a small rekey threshold the inner client
// starts a key exchange every few packets while data flows both ways and
// the loops park and wake in between.
func TestNestedSessionRekeys(t *testing.T) {
	kexinits := &kexCounter{}
	ic, _, _ := nestedPair(t, 4<<10, "", kexinits)
	ech, ereqs, err := ic.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open echo: %v", err)
	}
	RefuseRequests(ech, ereqs)
	data := make([]byte, 1<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for off := 0; off < len(data); off += 3000 {
			end := off + 3000
			if end > len(data) {
				end = len(data)
			}
			if _, err := ech.Write(data[off:end]); err != nil {
				errc <- err
				return
			}
			time.Sleep(time.Millisecond / 4)
		}
		errc <- ech.CloseWrite()
	}()
	got, err := io.ReadAll(ech)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d", len(got), len(data))
	}
	waitLoops(t, 2)
	if n := kexinits.count(); n < 10 {
		t.Fatalf("%d KEXINITs sent for 1 MiB at a 4 KiB rekey threshold", n)
	}
}

// BenchmarkNestedPingPong is the round trip of 64 bytes through an echo
// channel of a nested session, parked between messages or not.
func BenchmarkNestedPingPong(b *testing.B) {
	for _, noPark := range []bool{false, true} {
		name := "parked"
		if noPark {
			name = "upstream"
		}
		b.Run(name, func(b *testing.B) {
			ic, _, _ := nestedPairConn(b, 0, "", nil, noPark)
			ech, ereqs, err := ic.OpenChannel("echo", nil)
			if err != nil {
				b.Fatal(err)
			}
			RefuseRequests(ech, ereqs)
			msg := make([]byte, 64)
			got := make([]byte, 64)
			b.ResetTimer()
			for range b.N {
				if _, err := ech.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(ech, got); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			ech.Close()
		})
	}
}
