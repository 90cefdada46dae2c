package turndial

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
)

// recordingProxy relays UDP between one client and a server, keeping every
// datagram. Its upstream socket can be replaced mid-session, which is what
// the server sees when a TURN allocation (relay address) is replaced.
type recordingProxy struct {
	front    net.PacketConn
	server   net.Addr
	mu       sync.Mutex
	client   net.Addr
	up       net.PacketConn
	toServer [][]byte
	toClient [][]byte
}

func newProxy(t *testing.T, server net.Addr) *recordingProxy {
	front, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{front: front, server: server}
	p.swap(t)
	t.Cleanup(func() {
		front.Close()
		p.mu.Lock()
		p.up.Close()
		p.mu.Unlock()
	})
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := front.ReadFrom(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.client = from
			p.toServer = append(p.toServer, append([]byte(nil), buf[:n]...))
			up := p.up
			p.mu.Unlock()
			up.WriteTo(buf[:n], server)
		}
	}()
	return p
}

// swap replaces the upstream socket: a new source address for the server.
func (p *recordingProxy) swap(t *testing.T) {
	up, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	old := p.up
	p.up = up
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := up.ReadFrom(buf)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.toClient = append(p.toClient, append([]byte(nil), buf[:n]...))
			client := p.client
			p.mu.Unlock()
			p.front.WriteTo(buf[:n], client)
		}
	}()
}

type record struct {
	typ  byte
	cid  []byte
	body []byte
}

// records splits a datagram into DTLS records; cidLen is the length of
// the CID in tls12_cid (type 25) records.
func records(d []byte, cidLen int) []record {
	var out []record
	for len(d) >= 13 {
		r := record{typ: d[0]}
		h := 11
		if r.typ == 25 {
			r.cid = d[11 : 11+cidLen]
			h += cidLen
		}
		n := int(binary.BigEndian.Uint16(d[h : h+2]))
		if len(d) < h+2+n {
			break
		}
		r.body = d[h+2 : h+2+n]
		out = append(out, r)
		d = d[h+2+n:]
	}
	return out
}

type hello struct {
	suites []uint16
	exts   map[uint16][]byte
}

// parseHello reads an unencrypted ClientHello (msg 1) or ServerHello (msg 2).
func parseHello(body []byte, msgType byte) (hello, bool) {
	if len(body) < 12 || body[0] != msgType {
		return hello{}, false
	}
	b := body[12:]
	skip := func(n int) bool {
		if len(b) < n {
			return false
		}
		b = b[n:]
		return true
	}
	vec8 := func() []byte {
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return nil
		}
		v := b[1 : 1+int(b[0])]
		b = b[1+int(b[0]):]
		return v
	}
	h := hello{exts: map[uint16][]byte{}}
	if !skip(34) { // version + random
		return h, false
	}
	vec8() // session id
	if msgType == 1 {
		vec8() // cookie
		n := int(binary.BigEndian.Uint16(b))
		for i := 0; i < n; i += 2 {
			h.suites = append(h.suites, binary.BigEndian.Uint16(b[2+i:]))
		}
		skip(2 + n)
		vec8() // compression
	} else {
		h.suites = []uint16{binary.BigEndian.Uint16(b)}
		skip(3)
	}
	if len(b) < 2 {
		return h, true
	}
	b = b[2:]
	for len(b) >= 4 {
		typ, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		h.exts[typ] = b[4 : 4+n]
		b = b[4+n:]
	}
	return h, true
}

const (
	extEMS = 23
	extCID = 54
)

// TestProfilesOnTheWire checks docs/protocols/turn-overlay.md §6.4: the suites, EMS and the 8-byte
// CID that the server assigns and the client puts on every record; and §6.5:
// after the client's source address changes (a replaced TURN allocation),
// the server keeps the session, with no second accept.
func TestProfilesOnTheWire(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	compat, err := ClientCompatOptions()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		server ServerProfile
		client []dtls.ClientOption
		suite  uint16
	}{
		{"compat", ServerProfile{Compat: true}, compat, uint16(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)},
		{"psk", ServerProfile{Keys: map[string][]byte{"default": key}}, ClientPSKOptions("default", key), uint16(dtls.TLS_PSK_WITH_AES_128_GCM_SHA256)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sopts, err := ServerOptions(tc.server)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := dtls.ListenWithOptions("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, sopts...)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var accepts atomic.Int32
			// The accepted session is closed here as well: the client's
			// close_notify may not reach it through the swapped proxy, and
			// closing the listener leaves accepted conns open.
			var mu sync.Mutex
			var accepted []net.Conn
			defer func() {
				ln.Close()
				mu.Lock()
				defer mu.Unlock()
				for _, c := range accepted {
					c.Close()
				}
			}()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					accepts.Add(1)
					mu.Lock()
					accepted = append(accepted, c)
					mu.Unlock()
					go func() {
						defer c.Close()
						buf := make([]byte, 1600)
						for {
							n, err := c.Read(buf)
							if err != nil {
								return
							}
							c.Write(buf[:n])
						}
					}()
				}
			}()
			proxy := newProxy(t, ln.Addr())
			pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
			defer pc.Close()
			dc, err := dtls.ClientWithOptions(pc, proxy.front.LocalAddr(), tc.client...)
			if err != nil {
				t.Fatal(err)
			}
			defer dc.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := dc.HandshakeContext(ctx); err != nil {
				t.Fatal(err)
			}
			// UDP may drop a datagram (the first one from a new address
			// races the server's routing of it), so the echo is retried;
			// what is checked is that the session answers, and below that
			// it was never accepted a second time.
			echo := func(msg string) {
				t.Helper()
				buf := make([]byte, 1600)
				var n int
				var err error
				for try := 0; try < 10; try++ {
					dc.Write([]byte(msg))
					dc.SetReadDeadline(time.Now().Add(time.Second))
					if n, err = dc.Read(buf); err == nil && string(buf[:n]) == msg {
						return
					}
				}
				t.Fatalf("echo %q: %q %v", msg, buf[:n], err)
			}
			echo("before")

			proxy.mu.Lock()
			var ch, sh hello
			var chOK, shOK bool
			for _, d := range proxy.toServer {
				for _, r := range records(d, CIDSize) {
					if r.typ == 22 {
						if h, ok := parseHello(r.body, 1); ok {
							ch, chOK = h, true
						}
					}
				}
			}
			for _, d := range proxy.toClient {
				for _, r := range records(d, CIDSize) {
					if r.typ == 22 {
						if h, ok := parseHello(r.body, 2); ok {
							sh, shOK = h, true
						}
					}
				}
			}
			proxy.mu.Unlock()
			if !chOK || !shOK {
				t.Fatal("ClientHello or ServerHello not seen")
			}
			if len(ch.suites) != 1 || ch.suites[0] != tc.suite {
				t.Errorf("ClientHello suites %#04x, want only %#04x", ch.suites, tc.suite)
			}
			if sh.suites[0] != tc.suite {
				t.Errorf("ServerHello suite %#04x", sh.suites[0])
			}
			for name, h := range map[string]hello{"ClientHello": ch, "ServerHello": sh} {
				if _, ok := h.exts[extEMS]; !ok {
					t.Errorf("%s lacks extended_master_secret", name)
				}
			}
			cid := sh.exts[extCID]
			if len(cid) != 1+CIDSize || int(cid[0]) != CIDSize {
				t.Fatalf("server CID extension %x, want an %d-byte CID", cid, CIDSize)
			}
			serverCID := cid[1:]

			// Migration: the client now reaches the server from a new address.
			proxy.swap(t)
			echo("after-migration")
			if n := accepts.Load(); n != 1 {
				t.Errorf("%d accepts, want 1 (the session must survive the address change)", n)
			}
			// Every application-data record from the client carries the CID.
			proxy.mu.Lock()
			defer proxy.mu.Unlock()
			seen := 0
			for _, d := range proxy.toServer {
				for _, r := range records(d, CIDSize) {
					if r.typ == 23 {
						t.Error("client sent application data without the CID")
					}
					if r.typ == 25 {
						seen++
						if !bytes.Equal(r.cid, serverCID) {
							t.Errorf("record CID %x, want %x", r.cid, serverCID)
						}
					}
				}
			}
			if seen < 2 {
				t.Errorf("%d CID records from the client", seen)
			}
		})
	}
}
