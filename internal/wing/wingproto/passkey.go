package wingproto

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// PasskeyResponse is passkey.response (and the fields of the tunnel's
// passkey.auth request): a WebAuthn assertion. CredentialID is base64url;
// the other three are standard base64; Signature is ASN.1 DER.
type PasskeyResponse struct {
	Type              string `json:"type"`
	SessionID         string `json:"session_id,omitempty"`
	CredentialID      string `json:"credential_id"`
	AuthenticatorData string `json:"authenticator_data"`
	ClientDataJSON    string `json:"client_data_json"`
	Signature         string `json:"signature"`
}

// PasskeyChallenge is passkey.challenge; Challenge is base64url of 32
// random bytes.
type PasskeyChallenge struct {
	Type      string `json:"type"`
	SessionID string `json:"session_id"`
	Challenge string `json:"challenge"`
}

// ErrPasskey is returned by VerifyPasskey for any assertion that does not
// prove possession of one of the keys for the challenge.
var ErrPasskey = errors.New("invalid passkey signature")

// decodeB64 accepts standard or URL base64, padded or not: browsers and
// upstream peers are not consistent.
func decodeB64(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// VerifyPasskey checks an assertion against challenge (docs/protocols/wing.md §2.7):
// clientDataJSON.type is "webauthn.get", its challenge decodes to
// challenge, and the DER signature over authenticatorData ‖
// SHA-256(clientDataJSON) verifies with one of keys (raw 64-byte X‖Y
// P-256 public keys). It returns the index of the key that verified.
func VerifyPasskey(r PasskeyResponse, challenge []byte, keys [][]byte) (int, error) {
	cdj, err := decodeB64(r.ClientDataJSON)
	if err != nil {
		return -1, ErrPasskey
	}
	var cd struct {
		Type      string `json:"type"`
		Challenge string `json:"challenge"`
	}
	if json.Unmarshal(cdj, &cd) != nil || cd.Type != "webauthn.get" {
		return -1, ErrPasskey
	}
	got, err := decodeB64(cd.Challenge)
	if err != nil || len(challenge) == 0 || !bytes.Equal(got, challenge) {
		return -1, ErrPasskey
	}
	ad, err := decodeB64(r.AuthenticatorData)
	if err != nil {
		return -1, ErrPasskey
	}
	sig, err := decodeB64(r.Signature)
	if err != nil {
		return -1, ErrPasskey
	}
	ch := sha256.Sum256(cdj)
	digest := sha256.Sum256(append(append([]byte{}, ad...), ch[:]...))
	for i, k := range keys {
		pub, err := ParseP256(k)
		if err != nil {
			continue
		}
		if ecdsa.VerifyASN1(pub, digest[:], sig) {
			return i, nil
		}
	}
	return -1, ErrPasskey
}

// ParseP256 turns a raw 64-byte X‖Y (or 65-byte 0x04‖X‖Y) into a P-256
// public key, refusing points off the curve.
func ParseP256(raw []byte) (*ecdsa.PublicKey, error) {
	if len(raw) == 65 && raw[0] == 4 {
		raw = raw[1:]
	}
	if len(raw) != 64 {
		return nil, errors.New("wingproto: a P-256 passkey public key is 64 bytes X‖Y")
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append([]byte{4}, raw...))
	if err != nil {
		return nil, errors.New("wingproto: passkey public key is not on P-256")
	}
	return pub, nil
}
