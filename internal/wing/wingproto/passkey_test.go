package wingproto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"
)

func signAssertion(t testing.TB, k *ecdsa.PrivateKey, challenge []byte, typ string) PasskeyResponse {
	cdj, _ := json.Marshal(map[string]string{"type": typ, "challenge": base64.RawURLEncoding.EncodeToString(challenge)})
	ad := make([]byte, 37)
	ch := sha256.Sum256(cdj)
	d := sha256.Sum256(append(append([]byte{}, ad...), ch[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		t.Fatal(err)
	}
	return PasskeyResponse{AuthenticatorData: base64.StdEncoding.EncodeToString(ad),
		ClientDataJSON: base64.StdEncoding.EncodeToString(cdj), Signature: base64.StdEncoding.EncodeToString(sig)}
}

func TestVerifyPasskey(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	raw := func(k *ecdsa.PrivateKey) []byte { b, _ := k.PublicKey.Bytes(); return b[1:] }
	ch := make([]byte, 32)
	rand.Read(ch)
	r := signAssertion(t, k, ch, "webauthn.get")
	if i, err := VerifyPasskey(r, ch, [][]byte{raw(other), raw(k)}); err != nil || i != 1 {
		t.Fatalf("good assertion: %d %v", i, err)
	}
	if _, err := VerifyPasskey(r, ch, [][]byte{raw(other)}); err != ErrPasskey {
		t.Fatalf("wrong key: %v", err)
	}
	if _, err := VerifyPasskey(r, make([]byte, 32), [][]byte{raw(k)}); err != ErrPasskey {
		t.Fatalf("wrong challenge: %v", err)
	}
	if _, err := VerifyPasskey(signAssertion(t, k, ch, "webauthn.create"), ch, [][]byte{raw(k)}); err != ErrPasskey {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := ParseP256(make([]byte, 64)); err == nil {
		t.Fatal("zero point accepted")
	}
}

func FuzzVerifyPasskey(f *testing.F) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	b, _ := k.PublicKey.Bytes()
	ch := make([]byte, 32)
	r := signAssertion(f, k, ch, "webauthn.get")
	f.Add(r.AuthenticatorData, r.ClientDataJSON, r.Signature, b[1:])
	f.Add("", "", "", []byte{})
	f.Fuzz(func(t *testing.T, ad, cdj, sig string, pub []byte) {
		VerifyPasskey(PasskeyResponse{AuthenticatorData: ad, ClientDataJSON: cdj, Signature: sig}, ch, [][]byte{pub})
	})
}
