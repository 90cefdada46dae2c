// Copyright 2026 The warren Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the fork's tests when a goroutine outlives them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recConn records what one side writes, to check the wire afterwards.
type recConn struct {
	net.Conn
	mu  sync.Mutex
	out bytes.Buffer
	off bool // stop recording
}

func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if !c.off {
		c.out.Write(p)
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *recConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// plainPackets splits a recorded plain stream (version line, then binary
// packets without MAC) into payloads.
func plainPackets(t *testing.T, b []byte) [][]byte {
	t.Helper()
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		t.Fatalf("no version line in %q", b)
	}
	b = b[i+2:]
	var out [][]byte
	for len(b) > 0 {
		if len(b) < prefixLen {
			t.Fatalf("truncated packet prefix %x", b)
		}
		var prefix [prefixLen]byte
		copy(prefix[:], b)
		length, padding, err := parsePlainPrefix(prefix)
		if err != nil {
			t.Fatalf("packet %d: %v", len(out), err)
		}
		if int(length)+4 > len(b) {
			t.Fatalf("packet %d: truncated", len(out))
		}
		out = append(out, b[prefixLen:4+length-padding])
		b = b[4+length:]
	}
	return out
}

func testSigners(t testing.TB) []Signer {
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var out []Signer
	for _, k := range []any{edKey, ecKey} {
		s, err := NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := l.Accept(); ch <- res{c, err} }()
	client, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

type handshakeResult struct {
	client, server       Conn
	serverRec, clientRec *recConn
}

// handshake connects a client and a server over loopback TCP; each offers
// "none" as asked. The server echoes every "echo" channel. The
// connections close at the end of the test.
func handshake(t testing.TB, clientNone, serverNone bool, maxPacket uint32) handshakeResult {
	t.Helper()
	cc, sc := tcpPair(t)
	crec, srec := &recConn{Conn: cc}, &recConn{Conn: sc}

	scfg := &ServerConfig{NoClientAuth: true}
	scfg.NoneKeyExchange = serverNone
	scfg.ChannelMaxPacket = maxPacket
	for _, s := range testSigners(t) {
		scfg.AddHostKey(s)
	}
	type res struct {
		c   *ServerConn
		err error
	}
	done := make(chan res, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, chans, reqs, err := NewServerConn(srec, scfg)
		done <- res{c, err}
		if err != nil {
			return
		}
		go DiscardRequests(reqs)
		for nc := range chans {
			ch, creqs, err := nc.Accept()
			if err != nil {
				continue
			}
			go DiscardRequests(creqs)
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(ch, ch)
				_ = ch.CloseWrite()
			}()
		}
	}()
	ccfg := &ClientConfig{User: "tunnel", HostKeyCallback: InsecureIgnoreHostKey()}
	ccfg.NoneKeyExchange = clientNone
	ccfg.ChannelMaxPacket = maxPacket
	c, chans, reqs, err := NewClientConn(crec, "relay", ccfg)
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	go DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(UnknownChannelType, "")
		}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	t.Cleanup(func() {
		c.Close()
		r.c.Close()
		wg.Wait()
	})
	return handshakeResult{client: c, server: r.c, serverRec: srec, clientRec: crec}
}

// echo sends data through an echo channel and checks it comes back.
func echo(t *testing.T, c Conn, data []byte) {
	t.Helper()
	ch, reqs, err := c.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	go DiscardRequests(reqs)
	errc := make(chan error, 1)
	go func() {
		_, err := ch.Write(data)
		if err == nil {
			err = ch.CloseWrite()
		}
		errc <- err
	}()
	got, err := io.ReadAll(ch)
	if err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("echo: got %d bytes, want %d (equal prefix: %v)", len(got), len(data), bytes.HasPrefix(data, got))
	}
	ch.Close()
}

func messageTypes(pkts [][]byte) []byte {
	var out []byte
	for _, p := range pkts {
		out = append(out, p[0])
	}
	return out
}

// TestNoneKeyExchangeBothOffer: both sides offer none, so none is
// negotiated: after the two KEXINITs the connection protocol starts in
// plain packets, with no DH, NEWKEYS, service request or userauth.
func TestNoneKeyExchangeBothOffer(t *testing.T) {
	t.Parallel()
	h := handshake(t, true, true, 0)
	if a := h.client.(*connection).algorithms; a.KeyExchange != KeyExchangeNone || a.Read.Cipher != KeyExchangeNone {
		t.Fatalf("client negotiated %+v", a)
	}
	if a := h.server.(*ServerConn).Conn.(*connection).algorithms; a.KeyExchange != KeyExchangeNone {
		t.Fatalf("server negotiated %+v", a)
	}
	if id := h.client.SessionID(); len(id) != 0 {
		t.Fatalf("session id %x, want none", id)
	}
	data := bytes.Repeat([]byte("warren none "), 50000)
	echo(t, h.client, data)

	for side, rec := range map[string]*recConn{"client": h.clientRec, "server": h.serverRec} {
		pkts := plainPackets(t, rec.written())
		types := messageTypes(pkts)
		if types[0] != msgKexInit {
			t.Fatalf("%s: first message %d, want KEXINIT", side, types[0])
		}
		for _, mt := range types[1:] {
			switch mt {
			case msgKexInit, msgNewKeys, msgKexDHInit, msgKexDHReply, msgServiceRequest, msgServiceAccept, msgUserAuthRequest, msgUserAuthSuccess, msgExtInfo:
				t.Fatalf("%s sent message %d after a none key exchange (all: %v)", side, mt, types)
			}
		}
		var init kexInitMsg
		if err := Unmarshal(pkts[0], &init); err != nil {
			t.Fatal(err)
		}
		// A dev-tunnels-ssh peer without key exchange accepts this KEXINIT
		// only if every list names none.
		for i, l := range [][]string{init.KexAlgos, init.ServerHostKeyAlgos, init.CiphersClientServer, init.CiphersServerClient,
			init.MACsClientServer, init.MACsServerClient, init.CompressionClientServer, init.CompressionServerClient} {
			if !contains(l, KeyExchangeNone) {
				t.Fatalf("%s KEXINIT list %d lacks none: %v", side, i, l)
			}
		}
		if init.KexAlgos[0] != KeyExchangeNone {
			t.Fatalf("%s KEXINIT kex list %v: none is not first", side, init.KexAlgos)
		}
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

// TestNoneKeyExchangeOneSideStandard: when only one side offers none, the
// standard key exchange, encryption and userauth run as upstream.
func TestNoneKeyExchangeOneSideStandard(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                   string
		clientNone, serverNone bool
	}{{"client offers none", true, false}, {"server offers none", false, true}, {"neither", false, false}} {
		t.Run(tc.name, func(t *testing.T) {
			h := handshake(t, tc.clientNone, tc.serverNone, 0)
			a := h.client.(*connection).algorithms
			if a.KeyExchange == KeyExchangeNone || a.Read.Cipher == KeyExchangeNone || a.Write.MAC == KeyExchangeNone || a.HostKey == KeyExchangeNone {
				t.Fatalf("negotiated %+v", a)
			}
			if len(h.client.SessionID()) == 0 {
				t.Fatal("no session id after a standard key exchange")
			}
			echo(t, h.client, []byte("standard"))
			// Past the KEXINIT the standard stream is encrypted: the
			// plaintext must not appear on the wire.
			if bytes.Contains(h.clientRec.written(), []byte("standard")) {
				t.Fatal("plaintext on the wire after a standard key exchange")
			}
		})
	}
}

// TestChannelMaxPacket: two sides with a larger ChannelMaxPacket send
// larger data packets; a side with the default still gets 32 KiB ones.
func TestChannelMaxPacket(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte{7}, 3<<20)
	maxData := func(rec *recConn) int {
		biggest := 0
		for _, p := range plainPackets(t, rec.written()) {
			if p[0] == msgChannelData && len(p)-9 > biggest {
				biggest = len(p) - 9
			}
		}
		return biggest
	}
	big := handshake(t, true, true, 256<<10)
	echo(t, big.client, data)
	if got := maxData(big.clientRec); got != MaxChannelMaxPacket {
		t.Fatalf("largest data packet %d, want %d", got, MaxChannelMaxPacket)
	}
	small := handshake(t, true, true, 0)
	echo(t, small.client, data)
	if got := maxData(small.clientRec); got != channelMaxPacket {
		t.Fatalf("largest data packet %d, want %d", got, channelMaxPacket)
	}
}

// rawPeer speaks the wire by hand, as a dev-tunnels-ssh peer would.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *nonePacketCipher
	w    *nonePacketCipher
}

func newRawPeer(t *testing.T, conn net.Conn, version string) *rawPeer {
	t.Helper()
	if _, err := conn.Write([]byte(version + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := readVersion(conn); err != nil {
		t.Fatal(err)
	}
	return &rawPeer{t: t, conn: conn, r: &nonePacketCipher{}, w: &nonePacketCipher{}}
}

func (p *rawPeer) send(msg any) {
	p.t.Helper()
	if err := p.w.writeCipherPacket(0, p.conn, nil, Marshal(msg)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) read() []byte {
	p.t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := p.r.readCipherPacket(0, p.conn)
	if err != nil {
		p.t.Fatalf("raw peer read: %v", err)
	}
	return bytes.Clone(b)
}

// devTunnelsNoneInit is KEXINIT as a dev-tunnels-ssh session without key
// exchange sends it: none in every list, empty language lists.
func devTunnelsNoneInit() *kexInitMsg {
	none := []string{"none"}
	return &kexInitMsg{
		KexAlgos: none, ServerHostKeyAlgos: none,
		CiphersClientServer: none, CiphersServerClient: none,
		MACsClientServer: none, MACsServerClient: none,
		CompressionClientServer: none, CompressionServerClient: none,
	}
}

// TestNoneDevTunnelsV1Host plays a dev-tunnels-ssh V1 host (no key
// exchange at all) against a server offering none: the server's KEXINIT
// names none everywhere, it sends no NEWKEYS, and channels and global
// requests work straight after. A re-exchange the peer starts is answered
// with none again, and a disconnect without a language tag is parsed.
func TestNoneDevTunnelsV1Host(t *testing.T) {
	t.Parallel()
	cc, sc := tcpPair(t)
	scfg := &ServerConfig{NoClientAuth: true}
	scfg.NoneKeyExchange = true
	scfg.AddHostKey(testSigners(t)[1])
	type res struct {
		c    *ServerConn
		reqs <-chan *Request
		err  error
	}
	done := make(chan res, 1)
	go func() {
		c, chans, reqs, err := NewServerConn(sc, scfg)
		if err == nil {
			go func() {
				for nc := range chans {
					_ = nc.Reject(Prohibited, "no")
				}
			}()
		}
		done <- res{c, reqs, err}
	}()

	p := newRawPeer(t, cc, "SSH-2.0-dev-tunnels-ssh_3.12.42")
	// Like dev-tunnels-ssh, send KEXINIT and a request right away, without
	// waiting for the server's KEXINIT.
	p.send(devTunnelsNoneInit())
	p.send(globalRequestMsg{Type: "early", WantReply: true})
	var init kexInitMsg
	if err := Unmarshal(p.read(), &init); err != nil {
		t.Fatalf("server KEXINIT: %v", err)
	}
	if !contains(init.KexAlgos, "none") || !contains(init.CiphersServerClient, "none") || !contains(init.MACsClientServer, "none") || !contains(init.ServerHostKeyAlgos, "none") {
		t.Fatalf("server KEXINIT does not allow none: %+v", init)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	defer r.c.Close()
	go func() {
		for req := range r.reqs {
			_ = req.Reply(req.Type == "early" || req.Type == "late", []byte(req.Type))
		}
	}()
	if got := p.read(); got[0] != msgRequestSuccess || string(got[1:]) != "early" {
		t.Fatalf("reply to the early request: %x", got)
	}

	// The server opens a channel on the peer (the relay's
	// client-ssh-session-stream); the peer refuses it.
	opened := make(chan error, 1)
	go func() {
		_, _, err := r.c.OpenChannel("client-ssh-session-stream", nil)
		opened <- err
	}()
	var open channelOpenMsg
	if err := Unmarshal(p.read(), &open); err != nil || open.ChanType != "client-ssh-session-stream" {
		t.Fatalf("channel open: %+v, %v", open, err)
	}
	p.send(channelOpenFailureMsg{PeersID: open.PeersID, Reason: Prohibited, Message: "no", Language: ""})
	var oce *OpenChannelError
	if err := <-opened; !errors.As(err, &oce) || oce.Reason != Prohibited {
		t.Fatalf("open channel: %v", err)
	}

	// A re-exchange from the peer: answered with KEXINIT, none again, and
	// no NEWKEYS.
	p.send(devTunnelsNoneInit())
	if got := p.read(); got[0] != msgKexInit {
		t.Fatalf("answer to a re-exchange: message %d", got[0])
	}
	p.send(globalRequestMsg{Type: "late", WantReply: true})
	if got := p.read(); got[0] != msgRequestSuccess || string(got[1:]) != "late" {
		t.Fatalf("reply after the re-exchange: %x", got)
	}

	// dev-tunnels-ssh's disconnect: no language tag.
	p.send(struct {
		Reason  uint32 `sshtype:"1"`
		Message string
	}{11, "Replaced."})
	err := r.c.Wait()
	var dm *disconnectMsg
	if !errors.As(err, &dm) || dm.Reason != 11 || dm.Message != "Replaced." {
		t.Fatalf("Wait: %v, want the parsed disconnect", err)
	}
}

// TestNoneRefusedWithoutOffer: a dev-tunnels-ssh V1 host against a server
// that does not offer none gets a negotiation error, as with upstream.
func TestNoneRefusedWithoutOffer(t *testing.T) {
	t.Parallel()
	cc, sc := tcpPair(t)
	scfg := &ServerConfig{NoClientAuth: true}
	scfg.AddHostKey(testSigners(t)[0])
	errc := make(chan error, 1)
	go func() {
		_, _, _, err := NewServerConn(sc, scfg)
		errc <- err
	}()
	p := newRawPeer(t, cc, "SSH-2.0-dev-tunnels-ssh_3.12.42")
	p.send(devTunnelsNoneInit())
	var ane *AlgorithmNegotiationError
	if err := <-errc; !errors.As(err, &ane) || ane.What != "key exchange" {
		t.Fatalf("server handshake: %v, want a key exchange negotiation error", err)
	}
}

func TestParsePlainPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		length  uint32
		padding byte
		ok      bool
	}{{12, 4, true}, {maxPacket, 4, true}, {maxPacket + 1, 4, false}, {5, 4, false}, {12, 3, false}, {0, 0, false}} {
		var p [prefixLen]byte
		binary.BigEndian.PutUint32(p[:], tc.length)
		p[4] = tc.padding
		if _, _, err := parsePlainPrefix(p); (err == nil) != tc.ok {
			t.Errorf("length %d padding %d: err %v", tc.length, tc.padding, err)
		}
	}
}

func TestPacketPool(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, pooledMin - 1, pooledMin, pooledMin + 1, 200 << 10, maxPacket, maxPacket + 4096} {
		b := getPacketBuf(n)
		if len(b) != n {
			t.Fatalf("getPacketBuf(%d): len %d", n, len(b))
		}
		if n >= pooledMin && (cap(b) < n || cap(b) > 2*n) {
			t.Fatalf("getPacketBuf(%d): cap %d", n, cap(b))
		}
		putPacketBuf(b)
	}
}

// BenchmarkChannelThroughput moves data one way through a channel over
// loopback TCP: the none key exchange against a standard one (AES-GCM),
// with 32 KiB and the largest channel packets.
func BenchmarkChannelThroughput(b *testing.B) {
	for _, tc := range []struct {
		name      string
		none      bool
		maxPacket uint32
	}{
		{"none/32KiB", true, 0}, {"none/255KiB", true, MaxChannelMaxPacket},
		{"standard/32KiB", false, 0}, {"standard/255KiB", false, MaxChannelMaxPacket},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := handshake(b, tc.none, tc.none, tc.maxPacket)
			for _, r := range []*recConn{h.clientRec, h.serverRec} {
				r.mu.Lock()
				r.off = true
				r.out = bytes.Buffer{}
				r.mu.Unlock()
			}
			ch, reqs, err := h.client.OpenChannel("echo", nil)
			if err != nil {
				b.Fatal(err)
			}
			go DiscardRequests(reqs)
			// The server echoes: drain the echo so windows keep moving.
			done := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, ch); close(done) }()
			buf := make([]byte, 1<<20)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := ch.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			_ = ch.CloseWrite()
			<-done
			b.StopTimer()
			ch.Close()
		})
	}
}

// countingWriter records each Write as one message, as a WebSocket or an
// SSH channel would carry it.
type countingWriter struct{ msgs [][]byte }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.msgs = append(w.msgs, bytes.Clone(p))
	return len(p), nil
}

// TestCipherPacketOneWrite checks that the AEAD ciphers and the none cipher
// write each packet with one Write, so that a packet crosses a
// message-oriented transport as one message, and that it reads back.
func TestCipherPacketOneWrite(t *testing.T) {
	t.Parallel()
	for _, name := range []string{CipherAES128GCM, CipherAES256GCM, CipherChaCha20Poly1305, KeyExchangeNone} {
		t.Run(name, func(t *testing.T) {
			newCipher := func() packetCipher {
				if name == KeyExchangeNone {
					return &nonePacketCipher{}
				}
				mode := cipherModes[name]
				key := bytes.Repeat([]byte{7}, mode.keySize)
				iv := bytes.Repeat([]byte{9}, mode.ivSize)
				c, err := mode.create(key, iv, nil, DirectionAlgorithms{Cipher: name})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			w, r := newCipher(), newCipher()
			for i, n := range []int{1, 100, 4090, 4096, 40 << 10, MaxChannelMaxPacket + 9} {
				packet := bytes.Repeat([]byte{byte(i + 1)}, n)
				var out countingWriter
				if err := w.writeCipherPacket(uint32(i), &out, rand.Reader, bytes.Clone(packet)); err != nil {
					t.Fatalf("write %d bytes: %v", n, err)
				}
				if len(out.msgs) != 1 {
					t.Fatalf("a %d-byte packet took %d writes", n, len(out.msgs))
				}
				got, err := r.readCipherPacket(uint32(i), bytes.NewReader(out.msgs[0]))
				if err != nil || !bytes.Equal(got, packet) {
					t.Fatalf("read back %d bytes: err %v, equal %v", n, err, bytes.Equal(got, packet))
				}
			}
		})
	}
}

// TestPacketPoolBounded checks that the packet pools keep at most their
// budget of free buffers: what a burst of in-flight packets leaves behind
// is garbage, not retained memory.
func TestPacketPoolBounded(t *testing.T) {
	// Not parallel: it fills the process-wide pools.
	for i := range packetPools {
		size := pooledMin << i
		var bufs [][]byte
		for range 2*cap(packetPools[i]) + 1 {
			bufs = append(bufs, getPacketBuf(size-prefixLen))
		}
		for _, b := range bufs {
			putPacketBuf(b)
		}
		if free := len(packetPools[i]) * size; free > max(poolBudget, poolMinFree*size) {
			t.Fatalf("class %d KiB keeps %d bytes free, budget %d", size>>10, free, poolBudget)
		}
		if len(packetPools[i]) == 0 {
			t.Fatalf("class %d KiB keeps nothing", size>>10)
		}
	}
}

// TestConsumeData reads an echoed stream several windows long through
// ConsumeData: every byte arrives once and in order, the window keeps
// growing (or the echo would stall), a failing fn leaves its bytes for the
// next call, and the end of the data is io.EOF.
func TestConsumeData(t *testing.T) {
	t.Parallel()
	h := handshake(t, true, true, MaxChannelMaxPacket)
	ch, reqs, err := h.client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	go DiscardRequests(reqs)
	c, ok := ch.(interface {
		ConsumeData(func([]byte) error) (int, error)
	})
	if !ok {
		t.Fatalf("%T has no ConsumeData", ch)
	}
	data := make([]byte, 5*(16*MaxChannelMaxPacket)+12345)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := ch.Write(data)
		if err == nil {
			err = ch.CloseWrite()
		}
		errc <- err
	}()
	var got []byte
	errBusy := errors.New("not now")
	for i := 0; ; i++ {
		if i%7 == 3 {
			// A failing fn: nothing counts as read.
			_, err := c.ConsumeData(func([]byte) error { return errBusy })
			if err == io.EOF {
				break
			}
			if err != errBusy {
				t.Fatalf("failing fn: err %v, want it back", err)
			}
		}
		n, err := c.ConsumeData(func(p []byte) error {
			got = append(got, p...)
			return nil
		})
		if err == io.EOF {
			break
		}
		if err != nil || n == 0 {
			t.Fatalf("ConsumeData: n %d, err %v", n, err)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d (equal prefix: %v)", len(got), len(data), bytes.HasPrefix(data, got))
	}
	ch.Close()
}

// TestReadDataFrom sends a stream several windows long through
// ReadDataFrom in reads of varied sizes (tiny, at and above the packet
// size), over a none session and a standard one: every byte comes back
// once and in order, a short read gives back the window it did not use
// (or the echo would stall), and the reader's errors come back as rerr.
func TestReadDataFrom(t *testing.T) {
	t.Parallel()
	for _, none := range []bool{true, false} {
		t.Run(fmt.Sprintf("none=%v", none), func(t *testing.T) {
			t.Parallel()
			h := handshake(t, none, none, MaxChannelMaxPacket)
			ch, reqs, err := h.client.OpenChannel("echo", nil)
			if err != nil {
				t.Fatalf("open channel: %v", err)
			}
			go DiscardRequests(reqs)
			d, ok := ch.(interface {
				ReadDataFrom(io.Reader, int) (int, error, error)
			})
			if !ok {
				t.Fatalf("%T has no ReadDataFrom", ch)
			}
			data := make([]byte, 3*(16*MaxChannelMaxPacket)+777)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			got := make(chan []byte, 1)
			go func() {
				b, _ := io.ReadAll(ch)
				got <- b
			}()
			src := bytes.NewReader(data)
			limits := []int{1, 100, 32 << 10, MaxChannelMaxPacket, MaxChannelMaxPacket + 1, 1 << 30, 0}
			for i := 0; ; i++ {
				n, rerr, werr := d.ReadDataFrom(src, limits[i%len(limits)])
				if werr != nil {
					t.Fatalf("send: %v", werr)
				}
				if n > max(limits[i%len(limits)], 1) || n > MaxChannelMaxPacket {
					t.Fatalf("read %d bytes with limit %d", n, limits[i%len(limits)])
				}
				if rerr == io.EOF {
					break
				}
				if rerr != nil {
					t.Fatalf("read: %v", rerr)
				}
			}
			boom := errors.New("boom")
			if n, rerr, werr := d.ReadDataFrom(iotest.ErrReader(boom), 10); n != 0 || rerr != boom || werr != nil {
				t.Errorf("failing reader: %d, %v, %v; want 0, boom, nil", n, rerr, werr)
			}
			if err := ch.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if b := <-got; !bytes.Equal(b, data) {
				t.Fatalf("got %d bytes, want %d (equal prefix: %v)", len(b), len(data), bytes.HasPrefix(data, b))
			}
			ch.Close()
			if _, _, werr := d.ReadDataFrom(bytes.NewReader(data), 10); werr == nil {
				t.Error("ReadDataFrom on a closed channel succeeded")
			}
		})
	}
}

// TestForwardDataNow splices the echo channels of two sessions the way
// relay-server bridges a client and a host: what one channel receives is
// sent on the other with ForwardDataNow. Every byte arrives once and in
// order, whole packets go on in place, and the end of the data ends it.
func TestForwardDataNow(t *testing.T) {
	t.Parallel()
	for _, none := range []bool{true, false} {
		t.Run(fmt.Sprintf("none=%v", none), func(t *testing.T) {
			t.Parallel()
			open := func() Channel {
				h := handshake(t, none, none, MaxChannelMaxPacket)
				ch, reqs, err := h.client.OpenChannel("echo", nil)
				if err != nil {
					t.Fatalf("open channel: %v", err)
				}
				go DiscardRequests(reqs)
				return ch
			}
			a, b := open(), open()
			data := make([]byte, 4*(8*MaxChannelMaxPacket)+1234)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			go func() {
				// Packets of every size: small ones, whole ones, and
				// writes that split into several.
				for rest, i := data, 0; len(rest) > 0; i++ {
					n := []int{1, 777, int(MaxChannelMaxPacket), 3*int(MaxChannelMaxPacket) + 5}[i%4]
					if n > len(rest) {
						n = len(rest)
					}
					if _, err := a.Write(rest[:n]); err != nil {
						t.Errorf("write: %v", err)
						return
					}
					rest = rest[n:]
				}
				_ = a.CloseWrite()
			}()
			got := make(chan []byte, 1)
			go func() {
				buf, _ := io.ReadAll(b)
				got <- buf
			}()
			before := forwardedInPlace.Load()
			f := a.(interface {
				SetDataNotify(func())
				ForwardDataNow(io.Writer, func(int, error) error) (int, error)
			})
			ready := make(chan struct{}, 1)
			f.SetDataNotify(func() {
				select {
				case ready <- struct{}{}:
				default:
				}
			})
			var total int
			for {
				n, err := f.ForwardDataNow(b, func(n int, err error) error { total += n; return err })
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("forward: %v", err)
				}
				if n == 0 {
					select {
					case <-ready:
					case <-time.After(10 * time.Second):
						t.Fatal("no data for 10 s")
					}
				}
			}
			if err := b.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if total != len(data) {
				t.Errorf("done counted %d bytes, want %d", total, len(data))
			}
			if buf := <-got; !bytes.Equal(buf, data) {
				t.Fatalf("got %d bytes, want %d (equal prefix: %v)", len(buf), len(data), bytes.HasPrefix(data, buf))
			}
			if forwardedInPlace.Load() == before {
				t.Error("no packet was forwarded in place")
			}
		})
	}
}
