package apikey

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func generate(t *testing.T, scopes ...string) (string, Key) {
	t.Helper()
	p, k, err := Generate("ci", scopes, t0)
	if err != nil {
		t.Fatal(err)
	}
	return p, k
}

func TestGenerateRoundTrip(t *testing.T) {
	p, k := generate(t, ScopeTunnels, ScopeWings, ScopeTunnels)
	if k.Name != "ci" || !k.Created.Equal(t0) || k.RevokedAt != nil || len(k.Hash) != 32 {
		t.Errorf("key = %+v", k)
	}
	if !slices.Equal(k.Scopes, []string{ScopeTunnels, ScopeWings}) {
		t.Errorf("scopes = %q, want deduplicated [tunnels wings]", k.Scopes)
	}
	if !strings.HasPrefix(p, Prefix+k.ID+"_") || len(p) != len(Prefix)+13+1+43 {
		t.Errorf("plaintext %q (len %d) does not look like wrn_<id13>_<secret43>", p, len(p))
	}
	if strings.Contains(k.ID, "_") || k.ID != strings.ToLower(k.ID) {
		t.Errorf("id %q", k.ID)
	}
	id, secret, err := Parse(p)
	if err != nil || id != k.ID || len(secret) != SecretLen {
		t.Fatalf("Parse = %q, %d bytes, %v", id, len(secret), err)
	}
	if err := k.Check(p); err != nil {
		t.Errorf("Check(own plaintext) = %v", err)
	}
	if strings.Contains(string(k.Hash), string(secret)) {
		t.Error("hash contains the secret")
	}

	p2, k2 := generate(t, ScopeTickets)
	if p2 == p || k2.ID == k.ID {
		t.Error("two generated keys collide")
	}
	if err := k.Check(p2); !errors.Is(err, ErrMismatch) {
		t.Errorf("Check(other key) = %v, want ErrMismatch", err)
	}
}

// Secrets containing "_" or "-" must parse: the id never holds "_", so the
// first "_" after the prefix is the separator.
func TestParseSecretWithUnderscore(t *testing.T) {
	for i := 0; i < 2000; i++ {
		p, k, err := Generate("x", []string{ScopeWings}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p[len(Prefix)+14:], "_") {
			continue
		}
		if err := k.Check(p); err != nil {
			t.Fatalf("Check(%q) = %v", p, err)
		}
		return
	}
	t.Skip("no secret with _ in 2000 tries (probability ~1e-300)")
}

func TestCheck(t *testing.T) {
	p, k := generate(t, ScopeTunnels)
	prefixLen := len(Prefix) + len(k.ID) + 1
	// Flip one character of the secret to another valid, canonical one.
	flip := func(s string, i int) string {
		c := byte('A')
		if s[i] == 'A' {
			c = 'B'
		}
		return s[:i] + string(c) + s[i+1:]
	}
	other, _ := generate(t, ScopeTunnels)
	otherID := other[len(Prefix) : len(Prefix)+13]

	revoked := k
	at := t0.Add(time.Hour)
	revoked.RevokedAt = &at

	tests := []struct {
		name string
		key  Key
		in   string
		want error
	}{
		{"match", k, p, nil},
		{"tampered secret, first char", k, flip(p, prefixLen), ErrMismatch},
		{"tampered secret, middle char", k, flip(p, prefixLen+20), ErrMismatch},
		{"wrong id, right secret", k, Prefix + otherID + p[len(Prefix)+13:], ErrMismatch},
		{"other key", k, other, ErrMismatch},
		{"revoked, right secret", revoked, p, ErrRevoked},
		{"revoked, wrong secret", revoked, flip(p, prefixLen), ErrMismatch},
		{"malformed", k, "nope", ErrMalformed},
		{"zero Key never matches", Key{ID: k.ID}, p, ErrMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.key.Check(tc.in)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseMalformed(t *testing.T) {
	p, k := generate(t, ScopeTunnels)
	secret := p[len(Prefix)+14:]
	id := k.ID

	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"prefix only", Prefix},
		{"no prefix", id + "_" + secret},
		{"wrong prefix", "wrk_" + id + "_" + secret},
		{"uppercase prefix", "WRN_" + id + "_" + secret},
		{"no separator", Prefix + id + secret},
		{"empty id", Prefix + "_" + secret},
		{"empty secret", Prefix + id + "_"},
		{"short id", Prefix + id[1:] + "_" + secret},
		{"long id", Prefix + id + "a_" + secret},
		{"uppercase id", Prefix + strings.ToUpper(id) + "_" + secret},
		{"id with bad char", Prefix + "0" + id[1:] + "_" + secret},
		{"non-canonical id", Prefix + id[:12] + "z" + "_" + secret},
		{"short secret", Prefix + id + "_" + secret[1:]},
		{"long secret", Prefix + id + "_" + secret + "A"},
		{"padded secret", Prefix + id + "_" + secret + "="},
		{"std base64 chars", Prefix + id + "_" + "+" + secret[1:]},
		{"space in secret", Prefix + id + "_" + " " + secret[1:]},
		{"trailing newline", p + "\n"},
		{"leading space", " " + p},
		{"Bearer prefix left on", "Bearer " + p},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id, secret, err := Parse(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) = %q, %x, %v; want ErrMalformed", tc.in, id, secret, err)
			}
			if err := k.Check(tc.in); !errors.Is(err, ErrMalformed) {
				t.Errorf("Check(%q) = %v, want ErrMalformed", tc.in, err)
			}
		})
	}
}

// The last base64url character of a 32-byte secret carries 2 unused bits;
// setting them must not give a second valid spelling of the same key.
func TestParseNonCanonicalSecret(t *testing.T) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	p, k := generate(t, ScopeTunnels)
	i := strings.IndexByte(alphabet, p[len(p)-1])
	alt := p[:len(p)-1] + string(alphabet[i^1])
	if _, _, err := Parse(alt); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse(non-canonical) = %v, want ErrMalformed", err)
	}
	if err := k.Check(alt); err == nil {
		t.Error("Check accepted a second spelling of the key")
	}
}

func TestValidateScopes(t *testing.T) {
	tests := []struct {
		in      []string
		ok      bool
		mention string
	}{
		{[]string{ScopeTunnels}, true, ""},
		{[]string{ScopeTickets, ScopeWings, ScopeTunnels}, true, ""},
		{[]string{ScopeWings, ScopeWings}, true, ""},
		{nil, false, "required"},
		{[]string{}, false, "required"},
		{[]string{"admin"}, false, `"admin"`},
		{[]string{ScopeTunnels, "Tickets"}, false, `"Tickets"`},
		{[]string{""}, false, `""`},
		{[]string{"tunnels tickets"}, false, `"tunnels tickets"`},
	}
	for _, tc := range tests {
		err := ValidateScopes(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ValidateScopes(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil && (!errors.Is(err, ErrBadScope) || !strings.Contains(err.Error(), tc.mention)) {
			t.Errorf("ValidateScopes(%q) = %v, want ErrBadScope mentioning %s", tc.in, err, tc.mention)
		}
	}
	if _, _, err := Generate("x", []string{"nope"}, t0); !errors.Is(err, ErrBadScope) {
		t.Errorf("Generate with bad scope: %v", err)
	}
	if _, _, err := Generate("x", nil, t0); !errors.Is(err, ErrBadScope) {
		t.Errorf("Generate with no scope: %v", err)
	}
}

func TestHasScope(t *testing.T) {
	_, k := generate(t, ScopeTunnels, ScopeTickets)
	for s, want := range map[string]bool{ScopeTunnels: true, ScopeTickets: true, ScopeWings: false, "": false, "Tunnels": false} {
		if got := k.HasScope(s); got != want {
			t.Errorf("HasScope(%q) = %v, want %v", s, got, want)
		}
	}
}
