package wingrtc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func collect(r *Reorder, out *bytes.Buffer, seq int64, p string) error {
	return r.Push(seq, []byte(p), func(b []byte) error { out.Write(b); return nil })
}

func TestReorderOrdersAndDeduplicates(t *testing.T) {
	var r Reorder
	var out bytes.Buffer
	steps := []struct {
		seq int64
		p   string
	}{
		{0, "abc"},
		{6, "ghi"},  // early: held
		{3, "def"},  // fills the gap, releases ghi
		{0, "abc"},  // repeat
		{4, "efgh"}, // overlap, nothing new
		{7, "hijk"}, // overlap with two new bytes
		{20, "x"},   // held
	}
	for _, s := range steps {
		if err := collect(&r, &out, s.seq, s.p); err != nil {
			t.Fatal(err)
		}
	}
	if out.String() != "abcdefghijk" {
		t.Fatalf("got %q", out.String())
	}
	if n, ok := r.Next(); !ok || n != 11 {
		t.Fatalf("next %d %v", n, ok)
	}
}

func TestReorderStartsWhereTheFirstPieceIs(t *testing.T) {
	var r Reorder
	var out bytes.Buffer
	collect(&r, &out, 100, "xy")
	collect(&r, &out, 99, "wxyz")
	if out.String() != "xyz" {
		t.Fatalf("got %q", out.String())
	}
	r.Reset()
	if _, ok := r.Next(); ok {
		t.Fatal("Reset kept the position")
	}
	r.Start(5)
	collect(&r, &out, 6, "b")
	collect(&r, &out, 5, "a")
	if out.String() != "xyzab" {
		t.Fatalf("got %q", out.String())
	}
}

func TestReorderLimits(t *testing.T) {
	r := Reorder{Max: 4}
	var out bytes.Buffer
	collect(&r, &out, 0, "a")
	if err := collect(&r, &out, 5, "bcdef"); !errors.Is(err, ErrTooFarAhead) {
		t.Fatalf("held past Max: %v", err)
	}
	if err := collect(&r, &out, -1, "a"); !errors.Is(err, ErrBadOffset) {
		t.Fatalf("negative offset: %v", err)
	}
}

// A stream cut into pieces sent over two paths, with repeats, comes out
// whole and once.
func TestReorderTwoPaths(t *testing.T) {
	src := make([]byte, 1<<16)
	for i := range src {
		src[i] = byte(i * 7)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	type piece struct {
		seq int64
		p   []byte
	}
	var relay, direct []piece
	for off := 0; off < len(src); {
		n := 1 + rng.IntN(3000)
		n = min(n, len(src)-off)
		pc := piece{int64(off), src[off : off+n]}
		if rng.IntN(2) == 0 {
			relay = append(relay, pc)
		} else {
			direct = append(direct, pc)
		}
		if rng.IntN(5) == 0 { // resent over the relay after a fallback
			relay = append(relay, pc)
		}
		off += n
	}
	var r Reorder
	var out bytes.Buffer
	for len(relay)+len(direct) > 0 {
		var pc piece
		if len(direct) == 0 || (len(relay) > 0 && rng.IntN(2) == 0) {
			pc, relay = relay[0], relay[1:]
		} else {
			pc, direct = direct[0], direct[1:]
		}
		if err := r.Push(pc.seq, pc.p, func(b []byte) error { out.Write(b); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(out.Bytes(), src) {
		t.Fatalf("stream differs: got %d bytes, want %d", out.Len(), len(src))
	}
}

func FuzzReorder(f *testing.F) {
	f.Add([]byte{0, 3, 6, 3, 3, 3}, []byte("abcdefghi"))
	f.Add([]byte{5, 2, 0, 5}, []byte("0123456789"))
	f.Fuzz(func(t *testing.T, cuts []byte, src []byte) {
		// cuts: pairs of (start, length) into src, pushed in that order.
		r := Reorder{Max: 1 << 16}
		var out bytes.Buffer
		for i := 0; i+1 < len(cuts); i += 2 {
			s := int(cuts[i]) % (len(src) + 1)
			e := min(len(src), s+int(cuts[i+1]))
			if err := r.Push(int64(s), src[s:e], func(b []byte) error { out.Write(b); return nil }); err != nil {
				return
			}
		}
		// Whatever came out is a contiguous piece of src, each byte once.
		if n, ok := r.Next(); ok && out.Len() > 0 {
			start := int(n) - out.Len()
			if start < 0 || int(n) > len(src) || !bytes.Equal(out.Bytes(), src[start:n]) {
				t.Fatalf("emitted %q, not src[%d:%d] of %q", out.Bytes(), start, n, src)
			}
		}
	})
}
