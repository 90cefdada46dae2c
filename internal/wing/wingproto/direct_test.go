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
