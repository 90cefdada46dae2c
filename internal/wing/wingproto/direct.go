package wingproto

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Direct sessions (docs/protocols/wing.md §2.8): a session's I/O moves off
// the relay onto a WebRTC DataChannel between the client and the wing.
// Every signalling message is a session frame whose data is sealed with
// the session's wt-pty key, so the relay can neither read nor alter the
// offer, the answer or their ICE candidates.

// DataChannelLabel is the label of the session's DataChannel.
const DataChannelLabel = "warren-pty"

// ICEServer is one STUN or TURN server, in the shape of the browser's
// RTCIceServer.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEConfig is the answer of GET /api/app/ice.
type ICEConfig struct {
	ICEServers []ICEServer `json:"ice_servers"`
	// TTL is how long the TURN credentials stay valid, in seconds.
	TTL int `json:"ttl,omitempty"`
}

// DirectFrame is pty.migrate (both ways), pty.migrated and pty.fallback:
// Data is a sealed Signal.
type DirectFrame struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Data      string `json:"data"`
}

// Signal is the plaintext of a DirectFrame.
type Signal struct {
	// Gen numbers the client's migration attempts of one session; every
	// answer, migrated and fallback names the attempt it is about.
	Gen int64 `json:"gen"`
	// SDP is the offer (client → wing) or the answer (wing → client),
	// with every ICE candidate in it (no trickle).
	SDP string `json:"sdp,omitempty"`
	// Error is the wing's refusal of an offer.
	Error string `json:"error,omitempty"`
	// Seq, on pty.migrated, is the output offset from which output goes
	// over the DataChannel: everything before it went over the relay.
	Seq int64 `json:"seq,omitempty"`
	// Have, on pty.fallback, is what the sender has received of the
	// other side's stream (output for a client, input for the wing): the
	// other side sends again from there, over the relay.
	Have int64 `json:"have,omitempty"`
	// Start, on the client's pty.fallback instead of Have: the client
	// has had no output since it (re)attached, so it has everything
	// before the channel's stream and nothing of it.
	Start bool `json:"start,omitempty"`
	// Binary, on the client's offer: the client reads binary channel
	// frames (SealFrame), and the wing sends the session's output over
	// the channel so. Without it, output goes in the relay's JSON text
	// frames.
	Binary bool `json:"binary,omitempty"`
}

// MaxSignal bounds a Signal's plaintext (an SDP with its candidates).
const MaxSignal = 64 << 10

// ErrBadSignal is returned for a Signal that does not decode.
var ErrBadSignal = errors.New("wingproto: bad direct-session signal")

// SealSignal encrypts a Signal for a DirectFrame.
func SealSignal(c *Cipher, s Signal) string {
	b, _ := json.Marshal(s)
	return c.Seal(b)
}

// OpenSignal decrypts and checks a DirectFrame's data.
func OpenSignal(c *Cipher, data string) (Signal, error) {
	var s Signal
	p, err := c.Open(data)
	if err != nil {
		return s, err
	}
	return ParseSignal(p)
}

// ParseSignal decodes the plaintext of a DirectFrame.
func ParseSignal(p []byte) (Signal, error) {
	var s Signal
	if len(p) > MaxSignal {
		return s, fmt.Errorf("%w: %d bytes, limit %d", ErrBadSignal, len(p), MaxSignal)
	}
	if err := json.Unmarshal(p, &s); err != nil {
		return s, fmt.Errorf("%w: %v", ErrBadSignal, err)
	}
	if s.Gen <= 0 || s.Seq < 0 || s.Have < 0 {
		return s, fmt.Errorf("%w: gen, seq and have must be positive", ErrBadSignal)
	}
	return s, nil
}

// Binary channel frames (docs/protocols/wing.md §2.11). A client that says
// so in its offer (Signal.Binary) gets the controller's output over the
// DataChannel as binary messages instead of JSON text frames (input stays
// on pty.input text frames: keystrokes are small):
//
//	kind (1 byte) ‖ seq (8 bytes, big-endian) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)
//
// sealed with the session's wt-pty key like pty.output data, the first 9
// bytes authenticated as additional data, so that neither the kind nor
// the offset can be altered. No base64, no JSON: a frame costs 37 bytes
// and one AES-GCM pass.
const (
	// FrameOutput is pty.output: seq is the output offset. Other kinds
	// are reserved; a receiver drops them.
	FrameOutput byte = 1

	frameHeader = 9
	// FrameOverhead is what a binary frame adds to its plaintext.
	FrameOverhead = frameHeader + 12 + 16
	// MaxFramePlain is the most plaintext one binary frame carries: the
	// frame fits in 64 KiB, a message size every WebRTC stack takes.
	MaxFramePlain = 64<<10 - FrameOverhead
)

// SealFrame appends the binary frame of plain, of the given kind, starting
// at stream offset seq (≥ 0), to dst.
func (c *Cipher) SealFrame(dst []byte, kind byte, seq int64, plain []byte) []byte {
	start := len(dst)
	dst = append(dst, kind)
	dst = binary.BigEndian.AppendUint64(dst, uint64(seq))
	dst = append(dst, make([]byte, 12)...)
	rand.Read(dst[start+frameHeader:])
	hdr := dst[start : start+frameHeader]
	nonce := dst[start+frameHeader : start+frameHeader+12]
	return c.aead.Seal(dst, nonce, plain, hdr)
}

// OpenFrame authenticates and decrypts a binary frame in place: plain
// aliases b. Anything else than a whole frame sealed with this key, with
// an offset ≥ 0, is ErrDecrypt.
func (c *Cipher) OpenFrame(b []byte) (kind byte, seq int64, plain []byte, err error) {
	if len(b) < FrameOverhead {
		return 0, 0, nil, ErrDecrypt
	}
	seq = int64(binary.BigEndian.Uint64(b[1:frameHeader]))
	if seq < 0 {
		return 0, 0, nil, ErrDecrypt
	}
	ct := b[frameHeader+12:]
	plain, err = c.aead.Open(ct[:0], b[frameHeader:frameHeader+12], ct, b[:frameHeader])
	if err != nil {
		return 0, 0, nil, ErrDecrypt
	}
	return b[0], seq, plain, nil
}
