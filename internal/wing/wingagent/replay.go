package wingagent

import "bytes"

// replayBuffer keeps the last max bytes of a session's output. Trimming
// cuts after a newline where one is near, so a replay does not start in
// the middle of an escape sequence, and re-injects the alternate-screen
// switch when the session is in it (the terminal mode preamble).
type replayBuffer struct {
	max  int
	data []byte
	buf  []byte // data's backing array, with room to append (tail)
	alt  bool   // the program switched to the alternate screen
}

var (
	altOn  = []byte("\x1b[?1049h")
	altOff = []byte("\x1b[?1049l")
)

func (r *replayBuffer) write(p []byte) {
	if bytes.Contains(p, altOn[:len(altOn)-1]) {
		if i, j := bytes.LastIndex(p, altOn), bytes.LastIndex(p, altOff); i >= 0 || j >= 0 {
			r.alt = i > j
		}
	}
	tailAppend(&r.data, &r.buf, p)
	if len(r.data) <= r.max {
		return
	}
	cut := len(r.data) - r.max
	// Prefer a cut just after a newline within 4 KiB of the forced cut.
	if k := bytes.IndexByte(r.data[cut:min(len(r.data), cut+4096)], '\n'); k >= 0 {
		cut += k + 1
	}
	r.data = r.data[cut:]
}

// tailAppend appends p to *data, a window on the end of *buf that its
// caller trims from the front to some maximum: the window moves along a
// buffer of at least twice its length and comes back to the buffer's
// start when it reaches the end, so that each byte is moved about once
// rather than at every trim.
func tailAppend(data, buf *[]byte, p []byte) {
	if len(*data)+len(p) > cap(*data) {
		if need := len(*data) + len(p); need > cap(*buf)/2 {
			*buf = make([]byte, 0, max(2*need, 4096))
		}
		*data = append((*buf)[:0], *data...) // may overlap: copy is memmove
	}
	*data = append(*data, p...)
}

// snapshot returns the bytes to replay.
func (r *replayBuffer) snapshot() []byte {
	out := make([]byte, 0, len(r.data)+len(altOn))
	if r.alt && !bytes.HasPrefix(r.data, altOn) {
		out = append(out, altOn...)
	}
	return append(out, r.data...)
}
