package tunnelproto

import (
	"bytes"
	"errors"
	"testing"
)

func TestPortForwardRequestWire(t *testing.T) {
	want := []byte{0, 0, 0, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 0, 0x1f, 0x90}
	r := PortForwardRequest{AddressToBind: "127.0.0.1", Port: 8080}
	if got := r.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal = %x, want %x", got, want)
	}
	tests := []struct {
		name string
		in   []byte
		want PortForwardRequest
		err  bool
	}{
		{"ok", want, r, false},
		{"trailing ignored", append(append([]byte{}, want...), 9, 9), r, false},
		{"empty", nil, PortForwardRequest{}, true},
		{"short string", []byte{0, 0, 0, 5, 'a'}, PortForwardRequest{}, true},
		{"no port", []byte{0, 0, 0, 1, 'a', 0, 0}, PortForwardRequest{}, true},
		{"huge length", []byte{0xff, 0xff, 0xff, 0xff, 'a'}, PortForwardRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePortForwardRequest(tt.in)
			if tt.err {
				if !errors.Is(err, ErrShortPayload) {
					t.Fatalf("err = %v, want ErrShortPayload", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestPortForwardSuccess(t *testing.T) {
	b := MarshalPortForwardSuccess(443)
	if !bytes.Equal(b, []byte{0, 0, 1, 0xbb}) {
		t.Fatalf("Marshal = %x", b)
	}
	if p, err := ParsePortForwardSuccess(b); err != nil || p != 443 {
		t.Fatalf("Parse = %d, %v", p, err)
	}
	if _, err := ParsePortForwardSuccess([]byte{1, 2}); !errors.Is(err, ErrShortPayload) {
		t.Fatalf("short: err = %v", err)
	}
}

func TestPortRelayRequestWire(t *testing.T) {
	r := PortRelayRequest{AddressToBind: "127.0.0.1", Port: 22, AccessToken: "tok"}
	want := []byte{0, 0, 0, 9, '1', '2', '7', '.', '0', '.', '0', '.', '1', 0, 0, 0, 22, 0, 0, 0, 3, 't', 'o', 'k'}
	if got := r.Marshal(); !bytes.Equal(got, want) {
		t.Fatalf("Marshal = %x, want %x", got, want)
	}
	tests := []struct {
		name string
		in   []byte
		want PortRelayRequest
		err  bool
	}{
		{"ok", want, r, false},
		{"empty token", PortRelayRequest{AddressToBind: "", Port: 1}.Marshal(), PortRelayRequest{Port: 1}, false},
		{"standard layout lacks token", PortForwardRequest{AddressToBind: "x", Port: 1}.Marshal(), PortRelayRequest{}, true},
		{"truncated token", want[:len(want)-1], PortRelayRequest{}, true},
		{"empty", nil, PortRelayRequest{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParsePortRelayRequest(tt.in)
			if tt.err {
				if !errors.Is(err, ErrShortPayload) {
					t.Fatalf("err = %v, want ErrShortPayload", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestPortRelayConnectRequestWire(t *testing.T) {
	r := PortRelayConnectRequest{Host: "h", Port: 80, OriginatorIP: "o", OriginatorPort: 5, AccessToken: "t", IsE2EEncryptionRequested: true}
	six := []byte{0, 0, 0, 1, 'h', 0, 0, 0, 80, 0, 0, 0, 1, 'o', 0, 0, 0, 5, 0, 0, 0, 1, 't', 1}
	if got := r.Marshal(); !bytes.Equal(got, six) {
		t.Fatalf("Marshal = %x, want %x", got, six)
	}
	four := six[:18]
	if got := r.MarshalStandard(); !bytes.Equal(got, four) {
		t.Fatalf("MarshalStandard = %x, want %x", got, four)
	}
	std := r
	std.AccessToken, std.IsE2EEncryptionRequested = "", false
	tests := []struct {
		name string
		in   []byte
		want PortRelayConnectRequest
		full bool
		err  bool
	}{
		{"six fields", six, r, true, false},
		{"four fields fallback", four, std, false, false},
		{"token without bool falls back", six[:23], std, false, false},
		{"truncated token falls back", six[:20], std, false, false},
		{"nonzero bool is true", append(append([]byte{}, six[:23]...), 7), r, true, false},
		{"false bool", append(append([]byte{}, six[:23]...), 0), PortRelayConnectRequest{Host: "h", Port: 80, OriginatorIP: "o", OriginatorPort: 5, AccessToken: "t"}, true, false},
		{"three fields", six[:13], PortRelayConnectRequest{}, false, true},
		{"empty", nil, PortRelayConnectRequest{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, full, err := ParsePortRelayConnectRequest(tt.in)
			if tt.err {
				if !errors.Is(err, ErrShortPayload) {
					t.Fatalf("err = %v, want ErrShortPayload", err)
				}
				return
			}
			if err != nil || got != tt.want || full != tt.full {
				t.Fatalf("got %+v full=%v, %v; want %+v full=%v", got, full, err, tt.want, tt.full)
			}
		})
	}
}

// The fuzz targets check that no input panics and that whatever decodes
// re-encodes to bytes that decode to the same value.

func FuzzParsePortForwardRequest(f *testing.F) {
	f.Add(PortForwardRequest{AddressToBind: "127.0.0.1", Port: 80}.Marshal())
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParsePortForwardRequest(p)
		if err != nil {
			return
		}
		r2, err := ParsePortForwardRequest(r.Marshal())
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func FuzzParsePortForwardSuccess(f *testing.F) {
	f.Add(MarshalPortForwardSuccess(1))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, p []byte) {
		port, err := ParsePortForwardSuccess(p)
		if err != nil {
			return
		}
		if p2, err := ParsePortForwardSuccess(MarshalPortForwardSuccess(port)); err != nil || p2 != port {
			t.Fatalf("round trip: %d -> %d, %v", port, p2, err)
		}
	})
}

func FuzzParsePortRelayRequest(f *testing.F) {
	f.Add(PortRelayRequest{AddressToBind: "127.0.0.1", Port: 80, AccessToken: "a.b.c"}.Marshal())
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := ParsePortRelayRequest(p)
		if err != nil {
			return
		}
		r2, err := ParsePortRelayRequest(r.Marshal())
		if err != nil || r2 != r {
			t.Fatalf("round trip: %+v -> %+v, %v", r, r2, err)
		}
	})
}

func FuzzParsePortRelayConnectRequest(f *testing.F) {
	r := PortRelayConnectRequest{Host: "127.0.0.1", Port: 80, AccessToken: "tok"}
	f.Add(r.Marshal())
	f.Add(r.MarshalStandard())
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		r, full, err := ParsePortRelayConnectRequest(p)
		if err != nil {
			return
		}
		enc := r.MarshalStandard()
		if full {
			enc = r.Marshal()
		}
		r2, full2, err := ParsePortRelayConnectRequest(enc)
		if err != nil || r2 != r || full2 != full {
			t.Fatalf("round trip: %+v/%v -> %+v/%v, %v", r, full, r2, full2, err)
		}
	})
}

func TestPortRelayConnectResponse(t *testing.T) {
	for in, want := range map[string]bool{"": false, "\x00": false, "\x01": true, "\x02": true, "\x01\x00\x07": true} {
		if got := ParsePortRelayConnectResponse([]byte(in)).IsE2EEncryptionEnabled; got != want {
			t.Errorf("%q: %v, want %v", in, got, want)
		}
	}
	if b := (PortRelayConnectResponse{IsE2EEncryptionEnabled: true}).Marshal(); string(b) != "\x01" {
		t.Errorf("marshal true: %x", b)
	}
	if b := (PortRelayConnectResponse{}).Marshal(); string(b) != "\x00" {
		t.Errorf("marshal false: %x", b)
	}
}

func FuzzParsePortRelayConnectResponse(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{0, 9, 9})
	f.Fuzz(func(t *testing.T, p []byte) {
		r := ParsePortRelayConnectResponse(p)
		if r2 := ParsePortRelayConnectResponse(r.Marshal()); r2 != r {
			t.Fatalf("round trip: %+v -> %+v", r, r2)
		}
		if r.IsE2EEncryptionEnabled != (len(p) > 0 && p[0] != 0) {
			t.Fatalf("%x read as %+v", p, r)
		}
	})
}
