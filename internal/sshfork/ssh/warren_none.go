// Copyright 2026 The warren Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// warren: this file holds what warren's fork adds to x/crypto/ssh (see
// ../README.md): the "none" key exchange of dev-tunnels-ssh, a plain packet
// codec for it, the lenient disconnect parser, and the buffer pool of
// received packets.
//
// The "none" key exchange, as dev-tunnels-ssh (the SSH library of the Dev
// Tunnels TypeScript and C# SDKs) speaks it on relay WebSockets:
//
//   - Each side sends a KEXINIT that names "none" in its key exchange list
//     (dev-tunnels-ssh V1 hosts send "none" alone in every list; V2 hosts
//     and clients put it first, before their real algorithms).
//   - When the negotiated key exchange (RFC 4253 §7.1: the client's first
//     algorithm the server also lists) is "none", nothing else is
//     negotiated: no DH messages, no host key, no NEWKEYS in either
//     direction, no service request and no userauth. The connection
//     protocol starts right after the two KEXINITs.
//   - Packets stay in the RFC 4253 §6 binary packet format with no
//     encryption and no MAC, as before any key exchange. Sequence numbers
//     keep counting but are never used.
//   - A dev-tunnels-ssh peer without key exchange ignores any KEXINIT that
//     names "none" in all eight algorithm lists and closes the session
//     ("Encryption is disabled.") on one that does not; so an offer of none
//     adds "none" to every list. A later KEXINIT from the peer is answered
//     and again ends in "none"; this side never starts a re-exchange.
//
// Standard negotiation is unchanged when the peer does not offer "none":
// the "none" entries this side adds to its host key, cipher and MAC lists
// are ignored then, so a standard key exchange can never pick the "none"
// cipher or MAC.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"unsafe"
)

// KeyExchangeNone is dev-tunnels-ssh's "none" key exchange: no keys, no
// encryption, no MAC, no authentication. Only Config.NoneKeyExchange
// offers it; it is not in the package's supported algorithms.
const KeyExchangeNone = "none"

// MaxChannelMaxPacket is the largest Config.ChannelMaxPacket: a data
// packet of that payload and its headers fit in the 256 KiB that every
// packet reader of this package (and OpenSSH) accepts.
const MaxChannelMaxPacket = maxPacket - 1024

// offerNone adds "none" to a KEXINIT: first among the key exchanges, and
// in every other list (see above).
func offerNone(msg *kexInitMsg) {
	msg.KexAlgos = append([]string{KeyExchangeNone}, msg.KexAlgos...)
	msg.ServerHostKeyAlgos = appendNone(msg.ServerHostKeyAlgos)
	msg.CiphersClientServer = appendNone(msg.CiphersClientServer)
	msg.CiphersServerClient = appendNone(msg.CiphersServerClient)
	msg.MACsClientServer = appendNone(msg.MACsClientServer)
	msg.MACsServerClient = appendNone(msg.MACsServerClient)
	msg.CompressionClientServer = appendNone(msg.CompressionClientServer)
	msg.CompressionServerClient = appendNone(msg.CompressionServerClient)
}

func appendNone(list []string) []string {
	if slices.Contains(list, KeyExchangeNone) {
		return list
	}
	return append(slices.Clip(list), KeyExchangeNone)
}

// withoutNone returns a copy of msg without the "none" entries offerNone
// added to the host key, cipher and MAC lists.
func withoutNone(msg *kexInitMsg) *kexInitMsg {
	c := *msg
	drop := func(l []string) []string {
		return slices.DeleteFunc(slices.Clone(l), func(s string) bool { return s == KeyExchangeNone })
	}
	c.ServerHostKeyAlgos = drop(c.ServerHostKeyAlgos)
	c.CiphersClientServer = drop(c.CiphersClientServer)
	c.CiphersServerClient = drop(c.CiphersServerClient)
	c.MACsClientServer = drop(c.MACsClientServer)
	c.MACsServerClient = drop(c.MACsServerClient)
	return &c
}

// errNoneReexchange: a session that negotiated "none" was asked to move to
// a real key exchange, which would need the session identifier it never
// had.
var errNoneReexchange = errors.New("ssh: peer asked to re-exchange keys away from the none key exchange")

// noneKeyExchange finishes a key exchange that negotiates "none" and
// reports done. Otherwise, when this side offered "none", it strips "none"
// from its own lists in *clientInit or *serverInit so that the standard
// negotiation that follows cannot pick it.
func (t *handshakeTransport) noneKeyExchange(isClient bool, otherInit *kexInitMsg, clientInit, serverInit **kexInitMsg) (done bool, err error) {
	if !t.config.NoneKeyExchange {
		return false, nil
	}
	kex, err := findCommon("key exchange", (*clientInit).KexAlgos, (*serverInit).KexAlgos, isClient)
	if err != nil || kex != KeyExchangeNone {
		if t.noneKex.Load() {
			return true, errNoneReexchange
		}
		if isClient {
			*clientInit = withoutNone(*clientInit)
		} else {
			*serverInit = withoutNone(*serverInit)
		}
		return false, nil // findAgreedAlgorithms reports a failed negotiation
	}
	if otherInit.FirstKexFollows {
		// A guessed DH packet can only be for a real key exchange: the
		// guess is wrong, and RFC 4253 §7 says to drop it.
		if _, err := t.conn.readPacket(); err != nil {
			return true, err
		}
	}
	if t.noneKex.Load() {
		// A re-exchange the peer started: nothing changes. (The connection
		// may be reading the algorithms now, so they are not rewritten.)
		return true, nil
	}
	none := DirectionAlgorithms{Cipher: KeyExchangeNone, MAC: KeyExchangeNone, compression: compressionNone}
	t.algorithms = &NegotiatedAlgorithms{KeyExchange: KeyExchangeNone, HostKey: KeyExchangeNone, Read: none, Write: none}
	if t.sessionID == nil {
		// Non-nil marks the first exchange as done; "none" has no exchange
		// hash to identify the session by.
		t.sessionID = []byte{}
	}
	if tr, ok := t.conn.(*transport); ok {
		// The read loop waits for this exchange and writers queue behind
		// it, so neither direction is using its cipher now.
		tr.reader.packetCipher = &nonePacketCipher{}
		tr.writer.packetCipher = &nonePacketCipher{}
	}
	t.noneKex.Store(true)
	return true, nil
}

// noneBlockSize is the packet length multiple without a cipher, as RFC 4253
// §6 and dev-tunnels-ssh have it.
const noneBlockSize = 8

// nonePacketCipher reads and writes plain binary packets (no encryption, no
// MAC). It reads each packet straight into a buffer of getPacketBuf, which
// readPacket hands on without the copy other ciphers need, and writes each
// packet with a single Write so that a message-oriented transport (a
// WebSocket) carries it in one frame. Large packets are written from a
// pooled buffer, so an idle session keeps no packet-sized buffer.
type nonePacketCipher struct {
	prefix [prefixLen]byte
	buf    []byte // for writing packets below pooledMin
}

func (c *nonePacketCipher) readCipherPacket(_ uint32, r io.Reader) ([]byte, error) {
	if _, err := io.ReadFull(r, c.prefix[:]); err != nil {
		return nil, err
	}
	length, padding, err := parsePlainPrefix(c.prefix)
	if err != nil {
		return nil, err
	}
	b := getPacketBuf(int(length - 1))
	if _, err := io.ReadFull(r, b); err != nil {
		putPacketBuf(b)
		return nil, err
	}
	return b[:length-1-padding], nil
}

// parsePlainPrefix checks the packet_length and padding_length of a plain
// packet and returns them.
func parsePlainPrefix(prefix [prefixLen]byte) (length, padding uint32, err error) {
	length = binary.BigEndian.Uint32(prefix[:4])
	padding = uint32(prefix[4])
	switch {
	case length > maxPacket:
		return 0, 0, fmt.Errorf("ssh: invalid packet length %d, packet too large", length)
	case length <= padding+1:
		return 0, 0, fmt.Errorf("ssh: invalid packet length %d with padding %d, packet too small", length, padding)
	case padding < 4:
		return 0, 0, fmt.Errorf("ssh: invalid padding length %d, less than 4", padding)
	}
	return length, padding, nil
}

func (c *nonePacketCipher) writeCipherPacket(_ uint32, w io.Writer, _ io.Reader, packet []byte) error {
	if len(packet) > maxPacket {
		return errors.New("ssh: packet too large")
	}
	padding := noneBlockSize - (prefixLen+len(packet))%noneBlockSize
	if padding < 4 {
		padding += noneBlockSize
	}
	n := prefixLen + len(packet) + padding
	var b []byte
	if pooledClass(n) >= 0 {
		b = getPacketBuf(n)
		defer putPacketBuf(b) // Write is done with it when it returns
	} else {
		if cap(c.buf) < n {
			c.buf = make([]byte, n, pooledMin)
		}
		b = c.buf[:n]
	}
	binary.BigEndian.PutUint32(b, uint32(1+len(packet)+padding))
	b[4] = byte(padding)
	copy(b[prefixLen:], packet)
	clear(b[prefixLen+len(packet):]) // the padding: nothing to hide without a cipher
	_, err := w.Write(b)
	return err
}

// unmarshalDisconnect parses SSH_MSG_DISCONNECT. dev-tunnels-ssh omits the
// language tag when it has none, which RFC 4253 §11.1 requires, so a
// missing one is accepted.
func unmarshalDisconnect(packet []byte, msg *disconnectMsg) error {
	if err := Unmarshal(packet, msg); err == nil {
		return nil
	}
	var short struct {
		Reason  uint32 `sshtype:"1"`
		Message string
	}
	if err := Unmarshal(packet, &short); err != nil {
		return err
	}
	msg.Reason, msg.Message, msg.Language = short.Reason, short.Message, ""
	return nil
}

// windowPackets is the least number of largest packets a channel window
// holds. Every packet in a window can be queued unread in the receiver's
// memory, so the window is also what one busy channel costs; 8 of the
// largest packets is x/crypto's own 2 MiB window.
const windowPackets = 8

// channelLimits returns the channel max packet and receive window a mux
// of cfg announces.
func channelLimits(cfg *Config) (maxPacket, window uint32) {
	maxPacket = channelMaxPacket
	if cfg != nil && cfg.ChannelMaxPacket > maxPacket {
		maxPacket = min(cfg.ChannelMaxPacket, MaxChannelMaxPacket)
	}
	// The window holds at least windowPackets packets, so that a window
	// adjust (sent after 3 packets are consumed) keeps the peer sending.
	return maxPacket, max(channelWindowSize, windowPackets*maxPacket)
}

// Received packets of pooledMin bytes and more, nearly all of them channel
// data, are taken from size-class pools and returned when a channel's
// reader has consumed them (buffer.Read), so a bulk transfer does not
// allocate one buffer per packet; the none cipher also writes large packets
// from them.
//
// Each class keeps at most poolBudget bytes of free buffers (and at least
// poolMinFree buffers): a bounded free list, not a sync.Pool, because
// channel windows let thousands of packets be in flight at once, and a
// sync.Pool would keep that peak (tens of MB) until two garbage
// collections, which an idle process runs only every two minutes. Buffers
// beyond the bound are left to the garbage collector.
const (
	// 2 KiB: what a channel keeps for its small writes (WriteExtended's
	// packetPool) stays below it, so an idle channel that once sent 10 KiB
	// packets does not keep a 10 KiB buffer.
	pooledMin     = 2 << 10
	pooledClasses = 9 // 2, 4, 8, ... 512 KiB
	// 4 MiB: one busy channel of the largest packets keeps a window (8
	// packets) queued at the receiver, one being read, and, on the relay,
	// one being written; at 2 MiB every few packets missed the pool and
	// were allocated (and cleared) anew, which profiled at a tenth of the
	// relay's CPU per GiB.
	poolBudget  = 4 << 20
	poolMinFree = 4
	// The classes below 16 KiB (small packets, many per second on an
	// interactive connection, but few bytes) keep 512 KiB.
	smallPoolBudget = 512 << 10
	smallPoolMax    = 16 << 10
)

var packetPools = func() (p [pooledClasses]chan []byte) {
	for i := range p {
		budget := poolBudget
		if pooledMin<<i < smallPoolMax {
			budget = smallPoolBudget
		}
		p[i] = make(chan []byte, max(poolMinFree, budget/(pooledMin<<i)))
	}
	return p
}()

// pooledClass returns the pool index for a buffer of n bytes (headroom
// included), or -1.
func pooledClass(n int) int {
	if n < pooledMin {
		return -1
	}
	for i, size := 0, pooledMin; i < pooledClasses; i, size = i+1, size*2 {
		if n <= size {
			return i
		}
	}
	return -1
}

// getPacketBuf returns a buffer of length n, pooled when large. A pooled
// buffer starts prefixLen bytes into its array, so that a received packet
// can be sent on with the binary packet header put in front of it, in
// place (withHeadroom, channel.forwardInPlace).
func getPacketBuf(n int) []byte {
	i := pooledClass(n + prefixLen)
	if i < 0 {
		return make([]byte, n)
	}
	select {
	case b := <-packetPools[i]:
		return b[:n]
	default:
		return make([]byte, prefixLen+n, pooledMin<<i)[prefixLen:]
	}
}

// pooledBuf reports whether b is a buffer of getPacketBuf's pools, with
// its headroom: its capacity is a class size less prefixLen. A buffer
// getPacketBuf did not pool is smaller than the smallest class less
// prefixLen.
func pooledBuf(b []byte) bool {
	c := cap(b) + prefixLen
	i := pooledClass(c)
	return i >= 0 && c == pooledMin<<i
}

// putPacketBuf returns a buffer from getPacketBuf to its pool. The caller
// must hold no other reference to it.
func putPacketBuf(b []byte) {
	if !pooledBuf(b) {
		return
	}
	select {
	case packetPools[pooledClass(cap(b)+prefixLen)] <- b[:0]:
	default: // the class holds its budget already
	}
}

// withHeadroom returns the pooled buffer b (pooledBuf) extended by its
// prefixLen bytes of headroom at the front.
func withHeadroom(b []byte) []byte {
	if !pooledBuf(b) {
		panic("ssh: withHeadroom of a buffer that is not pooled")
	}
	// getPacketBuf allocated the array prefixLen bytes before b.
	base := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), -prefixLen)
	return unsafe.Slice((*byte)(base), cap(b)+prefixLen)[:prefixLen+len(b)]
}

// consume waits for data, calls fn with the head element, whose buf is
// the next queued piece (valid only during fn), without holding the
// buffer's lock, and removes that piece once fn succeeds; it returns the
// bytes consumed. Without wait it returns 0 and a nil error when nothing
// is queued. Only one goroutine may consume or Read a buffer at a time.
// (warren)
func (b *buffer) consume(fn func(e *element) error, wait bool) (int, error) {
	b.Cond.L.Lock()
	for {
		if len(b.head.buf) > 0 {
			break
		}
		if b.head != b.tail {
			if b.head.pooled != nil {
				putPacketBuf(b.head.pooled)
				b.head.pooled = nil
			}
			b.head = b.head.next
			continue
		}
		if b.closed {
			b.Cond.L.Unlock()
			return 0, io.EOF
		}
		if !wait {
			b.Cond.L.Unlock()
			return 0, nil
		}
		b.Cond.Wait()
	}
	// The producer only appends after the tail: the head's bytes are ours.
	e := b.head
	n := len(e.buf)
	b.Cond.L.Unlock()
	if err := fn(e); err != nil {
		return 0, err
	}
	b.Cond.L.Lock()
	e.buf = e.buf[n:]
	e.release()
	b.Cond.L.Unlock()
	return n, nil
}

// consumeData is consume of the channel's data, growing the peer's window
// by what fn consumed, as Read does. (warren)
func (c *channel) consumeData(fn func(e *element) error, wait bool) (int, error) {
	n, err := c.pending.consume(fn, wait)
	if n > 0 {
		if aerr := c.adjustWindow(uint32(n)); aerr != nil && aerr != io.EOF {
			return n, aerr
		}
	}
	return n, err
}

// release lets go of a fully read element's packet: the head element
// stays in the buffer until the next one arrives, which on an idle
// channel may be never, and it must not keep the last packet (a pooled
// one is up to 255 KiB) meanwhile. (warren)
func (e *element) release() {
	if len(e.buf) > 0 {
		return
	}
	e.buf = nil
	if e.pooled != nil {
		putPacketBuf(e.pooled)
		e.pooled = nil
	}
}

// ConsumeData hands the channel's next queued data to fn without copying
// it: fn gets the payload of one or part of one received packet, which
// stays valid only until fn returns, and may be called again after the
// next ConsumeData. When fn returns nil the bytes count as read (the
// peer's window grows as with Read); its error is returned as is. At the
// end of the data ConsumeData returns io.EOF. It must not run concurrently
// with Read. A copy loop (warren's pipe.Join) uses it to move a channel's
// data on without a buffer of its own: one copy fewer per byte, and no
// buffer held while the channel is idle. (warren)
func (c *channel) ConsumeData(fn func(p []byte) error) (int, error) {
	return c.consumeData(func(e *element) error { return fn(e.buf) }, true)
}

// framedPadding is the room for padding a framed packet needs after its
// payload: the none cipher pads by 4 to 11 bytes.
const framedPadding = 2 * noneBlockSize

// writeFramed writes the channel packet framed[prefixLen:], built behind
// prefixLen bytes of room and before framedPadding bytes of capacity, so
// that the none cipher can add the binary packet header and padding in
// place. (warren)
func (ch *channel) writeFramed(framed []byte) error {
	t, ok := ch.mux.conn.(*handshakeTransport)
	if !ok {
		return ch.writePacket(framed[prefixLen:])
	}
	ch.writeMu.Lock()
	defer ch.writeMu.Unlock()
	if ch.sentClose {
		return io.EOF
	}
	return t.writePacketFramed(framed, framed[prefixLen:])
}

// writeFramedPacket is writePacket for a framed packet (see
// channel.writeFramed): without another copy under the none cipher.
// (warren)
func (t *transport) writeFramedPacket(framed []byte) error {
	if _, ok := t.writer.packetCipher.(*nonePacketCipher); !ok || debugTransport || t.bufWriter == nil {
		return t.writePacket(framed[prefixLen:])
	}
	packet := framed[prefixLen:]
	padding := noneBlockSize - (prefixLen+len(packet))%noneBlockSize
	if padding < 4 {
		padding += noneBlockSize
	}
	n := prefixLen + len(packet) + padding
	if cap(framed) < n {
		return t.writePacket(packet)
	}
	b := framed[:n]
	binary.BigEndian.PutUint32(b, uint32(1+len(packet)+padding))
	b[4] = byte(padding)
	clear(b[prefixLen+len(packet):])
	if _, err := t.bufWriter.Write(b); err != nil {
		return err
	}
	if err := t.bufWriter.Flush(); err != nil {
		return err
	}
	t.writer.seqNum++
	return nil
}

// ReadDataFrom reads once from r straight into a data packet of at most
// limit bytes (and no more than the peer's window and packet size allow) and
// sends what the read returned: a copy loop from a socket into the channel
// (warren's pipe.Join) needs no buffer of its own, and each byte is copied
// once less. It blocks, before reading, while the peer's window is closed.
// It returns the bytes sent, the error of r.Read, and the error of sending
// the packet (io.EOF once the channel is closed). (warren)
func (ch *channel) ReadDataFrom(r io.Reader, limit int) (n int, rerr, werr error) {
	if ch.sentEOF {
		return 0, nil, io.EOF
	}
	want := min(ch.maxRemotePayload, MaxChannelMaxPacket)
	if limit < int(want) {
		want = uint32(max(limit, 1))
	}
	space, werr := ch.remoteWin.reserve(want)
	if werr != nil {
		return 0, nil, werr
	}
	const headerLength = 9 // type, channel, length
	b := getPacketBuf(prefixLen + headerLength + int(space) + framedPadding)
	defer putPacketBuf(b)
	packet := b[prefixLen : prefixLen+headerLength+int(space)]
	n, rerr = r.Read(packet[headerLength:])
	if n < 0 || n > int(space) {
		n = 0 // a broken reader: send nothing
	}
	if unused := space - uint32(n); unused > 0 {
		ch.remoteWin.add(unused)
	}
	if n == 0 {
		return 0, rerr, nil
	}
	packet[0] = msgChannelData
	binary.BigEndian.PutUint32(packet[1:], ch.remoteId)
	binary.BigEndian.PutUint32(packet[5:], uint32(n))
	if werr = ch.writeFramed(b[:prefixLen+headerLength+n]); werr != nil {
		return 0, rerr, werr
	}
	return n, rerr, nil
}
