package wingproto

import (
	"errors"
	"strings"
	"testing"
)

func TestSignalRoundTrip(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	ca, _ := NewCipher(a, PublicKeyString(b), InfoPTY)
	cb, _ := NewCipher(b, PublicKeyString(a), InfoPTY)
	in := Signal{Gen: 3, SDP: "v=0\r\n", Seq: 12345, Have: 7}
	got, err := OpenSignal(cb, SealSignal(ca, in))
	if err != nil || got != in {
		t.Fatalf("got %+v, %v; want %+v", got, err, in)
	}
	// Another key (the relay's, or a stranger's) does not open it.
	c, _ := GenerateKey()
	cc, _ := NewCipher(c, PublicKeyString(a), InfoPTY)
	if _, err := OpenSignal(cc, SealSignal(ca, in)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("foreign key: %v, want ErrDecrypt", err)
	}
}

func TestParseSignalRefuses(t *testing.T) {
	for _, p := range []string{``, `[]`, `{"gen":0}`, `{"gen":1,"seq":-1}`, `{"gen":1,"have":-5}`, `{"gen":"x"}`,
		`{"gen":1,"sdp":"` + strings.Repeat("a", MaxSignal) + `"}`} {
		if _, err := ParseSignal([]byte(p)); !errors.Is(err, ErrBadSignal) {
			t.Errorf("%.40q: %v, want ErrBadSignal", p, err)
		}
	}
}

func FuzzParseSignal(f *testing.F) {
	for _, s := range []string{`{"gen":1,"sdp":"v=0"}`, `{"gen":2,"seq":10}`, `{"gen":3,"have":4,"error":"x"}`, `{}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSignal(b)
		if err == nil && (s.Gen <= 0 || s.Seq < 0 || s.Have < 0) {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func TestFrameRoundTrip(t *testing.T) {
	a, _ := GenerateKey()
	b, _ := GenerateKey()
	ca, _ := NewCipher(a, PublicKeyString(b), InfoPTY)
	cb, _ := NewCipher(b, PublicKeyString(a), InfoPTY)
	plain := []byte("hello \x00 terminal")
	f := ca.SealFrame([]byte("prefix"), FrameOutput, 1<<40, plain)
	if string(f[:6]) != "prefix" || len(f) != 6+FrameOverhead+len(plain) {
		t.Fatalf("frame of %d bytes: %q", len(f), f)
	}
	kind, seq, got, err := cb.OpenFrame(f[6:])
	if err != nil || kind != FrameOutput || seq != 1<<40 || string(got) != string(plain) {
		t.Fatalf("got %d %d %q %v", kind, seq, got, err)
	}
	// The header is authenticated: another kind or offset does not open.
	for _, i := range []int{0, 8} {
		f := ca.SealFrame(nil, 2, 5, plain)
		f[i] ^= 1
		if _, _, _, err := cb.OpenFrame(f); !errors.Is(err, ErrDecrypt) {
			t.Errorf("byte %d altered: %v, want ErrDecrypt", i, err)
		}
	}
	// Nor does a stranger's frame, or a short one.
	c, _ := GenerateKey()
	cc, _ := NewCipher(c, PublicKeyString(a), InfoPTY)
	if _, _, _, err := cb.OpenFrame(cc.SealFrame(nil, FrameOutput, 0, plain)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("foreign key: %v", err)
	}
	if _, _, _, err := cb.OpenFrame(make([]byte, FrameOverhead-1)); !errors.Is(err, ErrDecrypt) {
		t.Errorf("short frame: %v", err)
	}
	// An empty plaintext is a frame too.
	if _, _, p, err := cb.OpenFrame(ca.SealFrame(nil, 2, 0, nil)); err != nil || len(p) != 0 {
		t.Errorf("empty frame: %q %v", p, err)
	}
}

func FuzzOpenFrame(f *testing.F) {
	key := make([]byte, 32)
	c, _ := NewCipherFromKey(key)
	f.Add(c.SealFrame(nil, FrameOutput, 0, []byte("x")))
	f.Add(c.SealFrame(nil, 2, 1<<62, nil))
	f.Add([]byte{})
	f.Add(make([]byte, FrameOverhead))
	f.Fuzz(func(t *testing.T, b []byte) {
		kind, seq, p, err := c.OpenFrame(append([]byte(nil), b...))
		if err != nil {
			return
		}
		if seq < 0 || len(p) != len(b)-FrameOverhead {
			t.Fatalf("accepted kind %d seq %d with %d bytes of %d", kind, seq, len(p), len(b))
		}
		// What opens was sealed with this key: it seals back to a frame
		// that opens the same.
		if _, s2, p2, err := c.OpenFrame(c.SealFrame(nil, kind, seq, p)); err != nil || s2 != seq || string(p2) != string(p) {
			t.Fatalf("reseal: %v", err)
		}
	})
}
