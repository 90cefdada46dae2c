package wingproto

import (
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
