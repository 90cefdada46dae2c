package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ALPNFramedUDP is the DTLS ALPN protocol id of the framed udp overlay
// (version 2, docs/protocols/turn-overlay.md §2.4). A warren PSK client
// offers it; a warren tunnel-server with udp egress selects it. A peer that
// offers or selects nothing (the prototype, the successor, an older warren)
// keeps the raw datagrams of version 1, so the negotiation costs nothing on
// the wire and needs no extra round trip.
const ALPNFramedUDP = "warren-udp/2"

// FrameHeaderLen is the framed overlay's header: a type byte and a 32-bit
// big-endian peer id.
const FrameHeaderLen = 5

// Frame types of the framed udp overlay.
const (
	// FrameData carries one datagram of local peer Peer.
	FrameData byte = 0x01
	// FrameClose says the client forgot local peer Peer: the server may
	// close that peer's upstream socket. It has no payload.
	FrameClose byte = 0x02
)

// ErrBadFrame is wrapped by every ParseFrame error.
var ErrBadFrame = errors.New("bad overlay frame")

// Frame is one decoded record of the framed udp overlay.
type Frame struct {
	Type    byte
	Peer    uint32
	Payload []byte // aliases the decoded buffer
}

// PutFrameHeader writes a header into b[:FrameHeaderLen].
func PutFrameHeader(b []byte, typ byte, peer uint32) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:FrameHeaderLen], peer)
}

// ParseFrame decodes one record. The bytes come from the network (after
// DTLS, but a peer is not trusted to be well-formed), so every field is
// checked.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < FrameHeaderLen {
		return Frame{}, fmt.Errorf("%w: %d bytes, the header alone is %d", ErrBadFrame, len(b), FrameHeaderLen)
	}
	f := Frame{Type: b[0], Peer: binary.BigEndian.Uint32(b[1:FrameHeaderLen]), Payload: b[FrameHeaderLen:]}
	switch f.Type {
	case FrameData:
	case FrameClose:
		if len(f.Payload) != 0 {
			return Frame{}, fmt.Errorf("%w: close frame for peer %d carries %d bytes", ErrBadFrame, f.Peer, len(f.Payload))
		}
	default:
		return Frame{}, fmt.Errorf("%w: unknown type 0x%02x", ErrBadFrame, f.Type)
	}
	return f, nil
}
