package wingproto

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/curve25519"
	xhkdf "golang.org/x/crypto/hkdf"
)

// browserSeal is an independent implementation of the docs/protocols/wing.md §2.5 crypto (x/crypto
// curve25519 and hkdf), standing in for the browser's WebCrypto code.
func browserKey(t *testing.T, priv []byte, peerPub string, info string) cipher.AEAD {
	t.Helper()
	pub, err := base64.StdEncoding.DecodeString(peerPub)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := curve25519.X25519(priv, pub)
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	if _, err := xhkdf.New(sha256.New, shared, make([]byte, 32), []byte(info)).Read(key); err != nil {
		t.Fatal(err)
	}
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCM(block)
	return g
}

func TestCipherInteropWithIndependentImplementation(t *testing.T) {
	wing, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bpriv := make([]byte, 32)
	rand.Read(bpriv)
	bpubRaw, _ := curve25519.X25519(bpriv, curve25519.Basepoint)
	bpub := base64.StdEncoding.EncodeToString(bpubRaw)

	for _, info := range []string{InfoPTY, InfoTunnel} {
		c, err := NewCipher(wing, bpub, info)
		if err != nil {
			t.Fatal(err)
		}
		g := browserKey(t, bpriv, PublicKeyString(wing), info)
		// wing → browser
		wire := c.Seal([]byte("hello " + info))
		raw, _ := base64.StdEncoding.DecodeString(wire)
		plain, err := g.Open(nil, raw[:12], raw[12:], nil)
		if err != nil || string(plain) != "hello "+info {
			t.Fatalf("%s: browser cannot open wing payload: %v %q", info, err, plain)
		}
		// browser → wing
		nonce := make([]byte, 12)
		rand.Read(nonce)
		bw := base64.StdEncoding.EncodeToString(g.Seal(nonce, nonce, []byte("keys"), nil))
		got, err := c.Open(bw)
		if err != nil || string(got) != "keys" {
			t.Fatalf("%s: wing cannot open browser payload: %v", info, err)
		}
		// one flipped byte is rejected
		raw, _ = base64.StdEncoding.DecodeString(bw)
		raw[len(raw)/2] ^= 1
		if _, err := c.Open(base64.StdEncoding.EncodeToString(raw)); err == nil {
			t.Fatalf("%s: tampered payload accepted", info)
		}
	}
	// keys for different infos differ
	a, _ := NewCipher(wing, bpub, InfoPTY)
	b, _ := NewCipher(wing, bpub, InfoTunnel)
	if _, err := b.Open(a.Seal([]byte("x"))); err == nil {
		t.Fatal("wt-pty payload opened with the wt-tunnel key")
	}
}

func TestReplayChunks(t *testing.T) {
	data := make([]byte, 300<<10+17)
	rand.Read(data[:1000])
	chunks := CompressChunks(data)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3", len(chunks))
	}
	var all []byte
	for _, c := range chunks {
		p, err := DecompressChunk(c)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) > ChunkSize {
			t.Fatal("chunk too large")
		}
		all = append(all, p...)
	}
	if !bytes.Equal(all, data) {
		t.Fatal("replay round trip differs")
	}
	big := CompressChunks(make([]byte, 2*ChunkSize))[0]
	_ = big
}

func TestEnvelopeKeepsUnknownFields(t *testing.T) {
	e, typ, err := DecodeEnvelope([]byte(`{"type":"pty.start","x_future":{"a":1},"user_id":"evil"}`))
	if err != nil || typ != TypePTYStart {
		t.Fatal(err, typ)
	}
	e.Set("user_id", "alice")
	out := string(e.Encode())
	if !strings.Contains(out, `"x_future":{"a":1}`) || !strings.Contains(out, `"user_id":"alice"`) {
		t.Fatal(out)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, in := range []string{``, `null`, `[]`, `{}`, `{"type":""}`, `{"type":5}`, `"x"`,
		`{"type":"pty.input","TYPE":"pty.start"}`, `{"type":"pty.start","User_id":"evil"}`, "{\"type\":\"a\",\"\u017fession_id\":\"x\"}"} {
		if _, err := DecodeType([]byte(in)); err == nil {
			t.Errorf("DecodeType(%q) accepted", in)
		}
		if _, _, err := DecodeEnvelope([]byte(in)); err == nil {
			t.Errorf("DecodeEnvelope(%q) accepted", in)
		}
	}
}

var seeds = []string{
	`{"type":"wing.register","wing_id":"m1","public_key":"AAAA","locked":false,"allowed_count":0}`,
	`{"type":"pty.start","session_id":"abc","public_key":"x","cols":80,"rows":24}`,
	`{"type":"pty.output","session_id":"abc","data":"AAAA","compressed":true}`,
	`{"type":"pty.exited","session_id":"abc","exit_code":3}`,
	`{"type":"tunnel.req","request_id":"r","payload":"p"}`,
	`{"type":"pty.attach","spectate":true,"x":[1,2,{"y":null}]}`,
	`{}`, `null`, `{"type":1}`,
}

func FuzzDecode(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, err := DecodeType(b)
		e, etyp, eerr := DecodeEnvelope(b)
		if (err == nil) != (eerr == nil) {
			t.Fatalf("DecodeType and DecodeEnvelope disagree: %v / %v", err, eerr)
		}
		// What a struct decoder sees is what the relay routed on.
		var s SessionRef
		if eerr == nil {
			if Decode(b, &s) == nil && s.Type != etyp {
				t.Fatalf("struct type %q, envelope type %q", s.Type, etyp)
			}
		}
		if eerr == nil {
			if typ != etyp {
				t.Fatalf("types differ: %q %q", typ, etyp)
			}
			again, t2, err := DecodeEnvelope(e.Encode())
			if err != nil || t2 != etyp || len(again) != len(e) {
				t.Fatalf("re-encode changed the envelope: %v", err)
			}
		}
		for _, v := range []any{&Register{}, &Start{}, &Attach{}, &Output{}, &Input{}, &Resize{}, &Exited{}, &TunnelReq{}, &TunnelRes{}, &Attention{}} {
			Decode(b, v)
		}
	})
}

func FuzzOpen(f *testing.F) {
	c, _ := NewCipherFromKey(make([]byte, 32))
	f.Add(c.Seal([]byte("hello")))
	f.Add("")
	f.Add("!!!!")
	f.Add(base64.StdEncoding.EncodeToString(make([]byte, 28)))
	f.Fuzz(func(t *testing.T, s string) {
		p, err := c.Open(s)
		if err == nil {
			// Only genuine ciphertexts open; re-sealing must round trip.
			if q, err := c.Open(c.Seal(p)); err != nil || !bytes.Equal(p, q) {
				t.Fatal("round trip failed")
			}
		}
	})
}

func FuzzDecompressChunk(f *testing.F) {
	for _, c := range CompressChunks([]byte("hello world")) {
		f.Add(c)
	}
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := DecompressChunk(b); err == nil && len(p) > ChunkSize {
			t.Fatal("limit not enforced")
		}
	})
}

func FuzzParsePublicKey(f *testing.F) {
	k, _ := GenerateKey()
	f.Add(PublicKeyString(k))
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if pub, err := ParsePublicKey(s); err == nil && len(pub.Bytes()) != 32 {
			t.Fatal("bad key accepted")
		}
	})
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"https://example.com/", "http://127.0.0.1:8080/a?b=c#d"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("CheckURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "file:///etc/passwd", "javascript:alert(1)", "https://", "https://a b/",
		"https://x/\x1b[31m", "https://user:pw@x/", "/relative", "vscode://x/y", "https://x/" + strings.Repeat("a", MaxURL)} {
		if err := CheckURL(bad); err == nil {
			t.Errorf("CheckURL(%q) accepted", bad)
		}
	}
}

func FuzzParsePreview(f *testing.F) {
	f.Add([]byte(`{"mode":"url","url":"https://example.com/"}`))
	f.Add([]byte(`{"mode":"markdown","content":"# hi"}`))
	f.Add([]byte(`{"mode":""}`))
	f.Add([]byte(`{"mode":"url","url":"javascript:1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePreview(b)
		if err != nil {
			return
		}
		if p.Mode == "url" && CheckURL(p.URL) != nil {
			t.Fatalf("accepted url %q", p.URL)
		}
	})
}
