package wingproto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// HKDF info strings (docs/protocols/wing.md §2.5).
const (
	InfoPTY    = "wt-pty"
	InfoTunnel = "wt-tunnel"
)

// ErrDecrypt is returned for a payload that is not valid base64, too short,
// or fails authentication.
var ErrDecrypt = errors.New("wingproto: cannot decrypt payload")

// GenerateKey returns a new X25519 private key.
func GenerateKey() (*ecdh.PrivateKey, error) { return ecdh.X25519().GenerateKey(rand.Reader) }

// PublicKeyString is the wire form of an X25519 public key: standard base64
// with padding of the raw 32 bytes.
func PublicKeyString(k *ecdh.PrivateKey) string {
	return base64.StdEncoding.EncodeToString(k.PublicKey().Bytes())
}

// ParsePublicKey parses the wire form of an X25519 public key.
func ParsePublicKey(s string) (*ecdh.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("wingproto: public key is not base64: %w", err)
	}
	pub, err := ecdh.X25519().NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("wingproto: bad X25519 public key: %w", err)
	}
	return pub, nil
}

// Cipher seals and opens payloads between two peers. Safe for concurrent use.
type Cipher struct{ aead cipher.AEAD }

// NewCipher derives the shared key of priv and the peer's public key (wire
// form) for info: X25519, then HKDF-SHA256 with 32 zero bytes of salt, 32
// bytes out, used as an AES-256-GCM key.
func NewCipher(priv *ecdh.PrivateKey, peerPub string, info string) (*Cipher, error) {
	pub, err := ParsePublicKey(peerPub)
	if err != nil {
		return nil, err
	}
	shared, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("wingproto: ecdh: %w", err)
	}
	key, err := hkdf.Key(sha256.New, shared, make([]byte, 32), info, 32)
	if err != nil {
		return nil, err
	}
	return NewCipherFromKey(key)
}

// NewCipherFromKey wraps a 32-byte AES-256 key.
func NewCipherFromKey(key []byte) (*Cipher, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Cipher{aead: aead}, nil
}

// Seal encrypts plain into base64std(nonce ‖ ciphertext ‖ tag).
func (c *Cipher) Seal(plain []byte) string {
	buf := make([]byte, 12, 12+len(plain)+16)
	rand.Read(buf)
	buf = c.aead.Seal(buf, buf[:12], plain, nil)
	return base64.StdEncoding.EncodeToString(buf)
}

// Open decrypts the wire form made by Seal.
func (c *Cipher) Open(s string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) < 12+16 {
		return nil, ErrDecrypt
	}
	out, err := c.aead.Open(nil, raw[:12], raw[12:], nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
