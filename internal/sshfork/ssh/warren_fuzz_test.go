// Copyright 2026 The warren Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// fuzzConn is a net.Conn that reads the fuzz input and discards writes.
type fuzzConn struct {
	r io.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *fuzzConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// plainStream frames payloads as a peer's stream after its version line.
func plainStream(version string, msgs ...any) []byte {
	var b bytes.Buffer
	b.WriteString(version + "\r\n")
	w := &nonePacketCipher{}
	for _, m := range msgs {
		var p []byte
		switch m := m.(type) {
		case []byte:
			p = m
		default:
			p = Marshal(m)
		}
		_ = w.writeCipherPacket(0, &b, nil, p)
	}
	return b.Bytes()
}

// FuzzNoneHandshake feeds a server that offers the none key exchange an
// arbitrary client stream: version line, KEXINIT, then connection
// messages in plain packets. Nothing may panic or hang; the connection
// ends when the input does.
func FuzzNoneHandshake(f *testing.F) {
	v := "SSH-2.0-dev-tunnels-ssh_3.12.42"
	f.Add(plainStream(v, devTunnelsNoneInit()))
	f.Add(plainStream(v, devTunnelsNoneInit(),
		globalRequestMsg{Type: "tcpip-forward", WantReply: true, Data: []byte{0, 0, 0, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 0, 0x1f, 0x90}},
		channelOpenMsg{ChanType: "session", PeersID: 1, PeersWindow: 1 << 20, MaxPacketSize: 1 << 15},
		channelDataMsg{PeersID: 0, Length: 5, Rest: []byte("hello")},
		struct {
			Reason  uint32 `sshtype:"1"`
			Message string
		}{11, "bye"}))
	first := devTunnelsNoneInit()
	first.FirstKexFollows = true
	f.Add(plainStream(v, first, kexECDHInitMsg{ClientPubKey: make([]byte, 32)}))
	std := devTunnelsNoneInit()
	std.KexAlgos = []string{KeyExchangeCurve25519, KeyExchangeNone}
	f.Add(plainStream(v, std))
	f.Add(plainStream(v, devTunnelsNoneInit(), devTunnelsNoneInit(), []byte{msgNewKeys}))
	f.Add([]byte(v + "\r\n\x00\x00\x00\x0c\x04"))
	f.Add([]byte("junk\r\n"))

	signer := testSigners(f)[0]
	f.Fuzz(func(t *testing.T, stream []byte) {
		cfg := &ServerConfig{NoClientAuth: true}
		cfg.NoneKeyExchange = true
		cfg.AddHostKey(signer)
		sc, chans, reqs, err := NewServerConn(&fuzzConn{r: bytes.NewReader(stream)}, cfg)
		if err != nil {
			return
		}
		go DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				ch, creqs, err := nc.Accept()
				if err != nil {
					continue
				}
				go DiscardRequests(creqs)
				go func() { _, _ = io.Copy(io.Discard, ch) }()
			}
		}()
		_ = sc.Wait()
		_ = sc.Close()
	})
}

// FuzzPlainPacket decodes arbitrary bytes as plain binary packets (the
// none key exchange's); a packet that decodes must survive a write and
// read back unchanged.
func FuzzPlainPacket(f *testing.F) {
	var b bytes.Buffer
	w := &nonePacketCipher{}
	_ = w.writeCipherPacket(0, &b, nil, Marshal(devTunnelsNoneInit()))
	_ = w.writeCipherPacket(0, &b, nil, []byte{msgIgnore})
	f.Add(b.Bytes())
	f.Add([]byte{0, 0, 0, 5, 4, 1, 0, 0, 0})
	f.Add([]byte{0, 4, 0, 1, 4})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &nonePacketCipher{}
		in := bytes.NewReader(data)
		for {
			p, err := r.readCipherPacket(0, in)
			if err != nil {
				return
			}
			p = bytes.Clone(p)
			var out bytes.Buffer
			if err := (&nonePacketCipher{}).writeCipherPacket(0, &out, nil, bytes.Clone(p)); err != nil {
				t.Fatalf("write back a decoded packet of %d bytes: %v", len(p), err)
			}
			back, err := (&nonePacketCipher{}).readCipherPacket(0, &out)
			if err != nil || !bytes.Equal(back, p) {
				t.Fatalf("round trip: %v, equal %v", err, bytes.Equal(back, p))
			}
			var dm disconnectMsg
			if len(p) > 0 && p[0] == msgDisconnect {
				_ = unmarshalDisconnect(p, &dm)
			}
		}
	})
}
