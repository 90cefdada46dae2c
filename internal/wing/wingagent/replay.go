package wingagent

import "bytes"

// replayBuffer keeps the last max bytes of a session's output. Trimming
// cuts after a newline where one is near, so a replay does not start in
// the middle of an escape sequence, and re-injects the alternate-screen
// switch when the session is in it (the terminal mode preamble).
type replayBuffer struct {
	max  int
	data []byte
	alt  bool // the program switched to the alternate screen
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
	r.data = append(r.data, p...)
	if len(r.data) <= r.max {
		return
	}
	cut := len(r.data) - r.max
	// Prefer a cut just after a newline within 4 KiB of the forced cut.
	if k := bytes.IndexByte(r.data[cut:min(len(r.data), cut+4096)], '\n'); k >= 0 {
		cut += k + 1
	}
	n := copy(r.data, r.data[cut:])
	r.data = r.data[:n]
}

// snapshot returns the bytes to replay.
func (r *replayBuffer) snapshot() []byte {
	out := make([]byte, 0, len(r.data)+len(altOn))
	if r.alt && !bytes.HasPrefix(r.data, altOn) {
		out = append(out, altOn...)
	}
	return append(out, r.data...)
}
