package overlay

import (
	"bytes"
	"errors"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	b := make([]byte, FrameHeaderLen+3)
	PutFrameHeader(b, FrameData, 0xdeadbeef)
	copy(b[FrameHeaderLen:], "abc")
	f, err := ParseFrame(b)
	if err != nil || f.Type != FrameData || f.Peer != 0xdeadbeef || string(f.Payload) != "abc" {
		t.Fatalf("got %+v, %v", f, err)
	}
	c := make([]byte, FrameHeaderLen)
	PutFrameHeader(c, FrameClose, 7)
	if f, err := ParseFrame(c); err != nil || f.Type != FrameClose || f.Peer != 7 {
		t.Fatalf("close: %+v, %v", f, err)
	}
	for name, bad := range map[string][]byte{
		"short":              {FrameData, 0, 0},
		"unknown type":       {0x7f, 0, 0, 0, 1, 'x'},
		"close with payload": {FrameClose, 0, 0, 0, 1, 'x'},
	} {
		if _, err := ParseFrame(bad); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: err %v, want ErrBadFrame", name, err)
		}
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{FrameData, 0, 0, 0, 1, 'h', 'i'})
	f.Add([]byte{FrameClose, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{FrameData, 0, 0, 0, 0})
	f.Add([]byte{})
	f.Add([]byte{0x00, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ParseFrame(b)
		if err != nil {
			if !errors.Is(err, ErrBadFrame) {
				t.Fatalf("error %v does not wrap ErrBadFrame", err)
			}
			return
		}
		// A frame that decodes re-encodes to the same bytes.
		out := make([]byte, FrameHeaderLen+len(fr.Payload))
		PutFrameHeader(out, fr.Type, fr.Peer)
		copy(out[FrameHeaderLen:], fr.Payload)
		if !bytes.Equal(out, b) {
			t.Fatalf("re-encoded %x, decoded from %x", out, b)
		}
	})
}
