package wingproto

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Output flow control (docs/protocols/wing.md §2.12, warren). The
// controller of a session acknowledges the live output it has consumed
// (written to its terminal) by stream offset; the wing stops reading the
// session's PTY while more than a window of the output it sent over the
// relay is unacknowledged, so a fast program is slowed down by the kernel
// PTY buffer, as on a local terminal, instead of overflowing the relay's
// per-socket send queue.
//
// Negotiation: a client that acknowledges says so in pty.start or
// pty.attach ("acks": true), and a relay that passes pty.ack on confirms
// it by adding "relay_acks": true (warren's relay-server sets it, and
// drops one sent by a user); with both, the wing applies the window from
// the first byte. A wing that honours acks says so with pty.started's
// "window" (bytes), and a client that sees it acknowledges. Without the
// confirmation the window takes effect at the first acknowledgement that
// reaches the wing, so a peer that sends none (wingthing's browser, an
// older warren client) or a relay that drops the unknown pty.ack
// (wingthing's, an older warren relay-server) leaves the session as it
// was: no window.

// OutputWindow is the default window: the live output a wing sends over
// the relay to an acknowledging controller and keeps sending before an
// acknowledgement. As base64 inside JSON frames it is about 2.7 MiB of
// the relay's per-socket send queue (8 MiB by default), which leaves room
// for a reattach's replay (at most 2 MiB before compression).
const OutputWindow = 2 << 20

// AckEvery is the fraction of the window after which a client
// acknowledges: it acks once it has consumed window/AckEvery bytes since
// its last ack. The wing only waits with a whole window outstanding, so
// a client that follows it is never the reason both sides wait.
const AckEvery = 4

// Ack is pty.ack (client → wing): Data is a sealed AckBody.
type Ack struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Data      string `json:"data"`
}

// AckBody is the plaintext of pty.ack.
type AckBody struct {
	// Seq is the offset, in the session's output stream (pty.output's
	// seq), up to which the client has consumed output.
	Seq int64 `json:"seq"`
}

// maxAck bounds an AckBody's plaintext.
const maxAck = 256

// ErrBadAck is returned for a pty.ack that does not decode.
var ErrBadAck = errors.New("wingproto: bad pty.ack")

// SealAck encrypts an acknowledgement of output up to seq.
func SealAck(c *Cipher, seq int64) string {
	b, _ := json.Marshal(AckBody{Seq: seq})
	return c.Seal(b)
}

// OpenAck decrypts and checks pty.ack's data; it returns the offset.
func OpenAck(c *Cipher, data string) (int64, error) {
	p, err := c.Open(data)
	if err != nil {
		return 0, err
	}
	return ParseAck(p)
}

// ParseAck decodes the plaintext of pty.ack: a JSON object whose seq is
// a non-negative integer.
func ParseAck(p []byte) (int64, error) {
	if len(p) > maxAck {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrBadAck, len(p), maxAck)
	}
	var b struct {
		Seq *int64 `json:"seq"`
	}
	if err := json.Unmarshal(p, &b); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrBadAck, err)
	}
	if b.Seq == nil || *b.Seq < 0 {
		return 0, fmt.Errorf("%w: seq must be a non-negative integer", ErrBadAck)
	}
	return *b.Seq, nil
}
