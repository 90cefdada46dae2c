package wingagent

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestTailAppend: the window over a reused buffer holds what appending
// and trimming a plain slice holds.
func TestTailAppend(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var data, buf, want []byte
	const max = 10000
	for i := range 2000 {
		p := make([]byte, rng.IntN(3000))
		for j := range p {
			p[j] = byte(i + j)
		}
		tailAppend(&data, &buf, p)
		want = append(want, p...)
		if over := len(data) - max; over > 0 {
			data = data[over:]
			want = want[over:]
		}
		if !bytes.Equal(data, want) {
			t.Fatalf("write %d: window differs", i)
		}
		if cap(buf) > 4*(max+3000) {
			t.Fatalf("write %d: buffer of %d bytes for a window of %d", i, cap(buf), max)
		}
	}
}

// TestReplayBufferTrims: the replay keeps at most max bytes, cut after a
// newline near the forced cut, across many writes.
func TestReplayBufferTrims(t *testing.T) {
	r := replayBuffer{max: 1000}
	var all []byte
	for i := range 500 {
		p := bytes.Repeat([]byte{'a' + byte(i%26)}, 37)
		if i%7 == 0 {
			p = append(p, '\n')
		}
		r.write(p)
		all = append(all, p...)
		if len(r.data) > 1000 || !bytes.HasSuffix(all, r.data) {
			t.Fatalf("write %d: %d bytes kept, not the tail of the output", i, len(r.data))
		}
	}
	if all[len(all)-len(r.data)-1] != '\n' {
		t.Fatalf("replay does not start after a newline: %q", r.data[:20])
	}
}
