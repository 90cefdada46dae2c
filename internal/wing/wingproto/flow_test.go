package wingproto

import (
	"errors"
	"testing"
)

func TestAckRoundTrip(t *testing.T) {
	c, _ := NewCipherFromKey(make([]byte, 32))
	for _, seq := range []int64{0, 1, 1 << 40} {
		got, err := OpenAck(c, SealAck(c, seq))
		if err != nil || got != seq {
			t.Fatalf("seq %d: got %d, %v", seq, got, err)
		}
	}
	other, _ := NewCipherFromKey(make([]byte, 32))
	other2, _ := NewCipherFromKey(append(make([]byte, 31), 1))
	if _, err := OpenAck(other2, SealAck(other, 5)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("another key: %v", err)
	}
	for _, bad := range []string{``, `{}`, `{"seq":-1}`, `{"seq":"1"}`, `{"seq":1.5}`, `[]`, `null`, `{"seq":null}`} {
		if _, err := ParseAck([]byte(bad)); !errors.Is(err, ErrBadAck) {
			t.Errorf("%q: %v, want ErrBadAck", bad, err)
		}
	}
	if _, err := ParseAck(make([]byte, 1000)); !errors.Is(err, ErrBadAck) {
		t.Error("an oversized ack was accepted")
	}
}

func FuzzParseAck(f *testing.F) {
	f.Add([]byte(`{"seq":0}`))
	f.Add([]byte(`{"seq":9223372036854775807}`))
	f.Add([]byte(`{"seq":-1}`))
	f.Add([]byte(`{"seq":1e3}`))
	f.Add([]byte(`{"SEQ":1,"seq":2}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, err := ParseAck(b)
		if err != nil {
			return
		}
		if seq < 0 || len(b) > maxAck {
			t.Fatalf("accepted %q as %d", b, seq)
		}
	})
}
