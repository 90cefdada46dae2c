package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"hash"
	"strings"
	"sync"
	"testing"
	"time"
)

const testIssuer = "https://relay.example.test"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is an injectable, concurrency-safe time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixedKey is a deterministic key so failures are reproducible.
func fixedKey(id string, created time.Time) Key {
	return Key{ID: id, Secret: bytes.Repeat([]byte(id[:1]), 32), Created: created}
}

type fixture struct {
	ring  *Keyring
	clock *clock
	iss   *Issuer
	key   Key
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	k := fixedKey("k1", t0.Add(-time.Hour))
	ring, err := NewKeyring([]Key{k})
	if err != nil {
		t.Fatal(err)
	}
	c := newClock(t0)
	iss, err := New(Config{Keys: ring, Issuer: testIssuer, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ring: ring, clock: c, iss: iss, key: k}
}

// created is the creation time of the tunnels tokens are issued for.
var created = t0.Add(-24 * time.Hour).Add(123456 * time.Microsecond)

// grant is a Grant for the tunnel instance created at created.
func grant(tunnelID string, scopes []string, ttl time.Duration) Grant {
	return Grant{TunnelID: tunnelID, TunnelCreated: created, Scopes: scopes, TTL: ttl}
}

func (f *fixture) issue(t testing.TB, scopes ...string) string {
	t.Helper()
	tok, _, err := f.iss.Issue(grant("tun1", scopes, time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// craft builds a JWT by hand: header and payload JSON, signed with HMAC
// using h over secret (nil h: empty signature).
func craft(t testing.TB, header, payload map[string]any, h func() hash.Hash, secret []byte) string {
	t.Helper()
	seg := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signing := seg(header) + "." + seg(payload)
	var sig []byte
	if h != nil {
		m := hmac.New(h, secret)
		m.Write([]byte(signing))
		sig = m.Sum(nil)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

var (
	hs256 = sha256.New
	hs384 = sha512.New384
)

// validPayload is a payload Issue would produce at t0 with a 1h TTL.
func validPayload() map[string]any {
	return map[string]any{
		"tunnelId":  "tun1",
		"clusterId": "",
		"scp":       "host",
		"iss":       testIssuer,
		"iat":       t0.Unix(),
		"nbf":       t0.Unix(),
		"exp":       t0.Add(time.Hour).Unix(),
	}
}

// segments splits a token and decodes its header and payload.
func segments(t testing.TB, tok string) (header, payload map[string]any, parts []string) {
	t.Helper()
	parts = strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatal(err)
		}
	}
	return header, payload, parts
}

// sentinels are the errors Verify may match; exactly one must match.
var sentinels = []error{ErrMalformed, ErrBadSignature, ErrUnknownKey, ErrExpired, ErrNotYetValid, ErrBadIssuer}
