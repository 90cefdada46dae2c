package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Sentinel errors.
var (
	// ErrMalformed: the plaintext is not wrn_<id>_<secret> as Generate makes.
	ErrMalformed = errors.New("apikey: malformed key")
	// ErrMismatch: the plaintext is not this key (other id or wrong secret).
	ErrMismatch = errors.New("apikey: key mismatch")
	// ErrRevoked: the plaintext matches, but the key was revoked.
	ErrRevoked = errors.New("apikey: key revoked")
	// ErrBadScope: a scope list is empty or names an unknown scope.
	ErrBadScope = errors.New("apikey: bad scope")
)

// Scopes an operator key can hold.
const (
	ScopeTunnels = "tunnels" // Dev Tunnels management API (create tunnels, mint tunnel tokens)
	ScopeTickets = "tickets" // ticket relay: mint tickets
	ScopeWings   = "wings"   // wings management
)

// Prefix starts every key; it makes leaked keys easy to spot and grep for.
const Prefix = "wrn_"

// Sizes of the random parts, in bytes.
const (
	IDLen     = 8
	SecretLen = 32
)

// idEncoding is lowercase base32 without padding: no "_", so the id ends at
// the first "_", and safe in case-insensitive stores and URLs.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// secretEncoding is strict so each secret has exactly one spelling.
var secretEncoding = base64.RawURLEncoding.Strict()

var (
	idChars     = idEncoding.EncodedLen(IDLen)         // 13
	secretChars = secretEncoding.EncodedLen(SecretLen) // 43
)

// Key is the stored form of an API key: everything but the secret.
type Key struct {
	ID   string // public id, the <id> part of the plaintext
	Name string // operator-chosen label; not validated
	// Hash is SHA-256 of the secret's 32 raw bytes. A plain fast hash is
	// enough: the secret is 256 bits from crypto/rand, so there is nothing
	// to brute-force that a slow KDF such as bcrypt would protect; KDFs are
	// for low-entropy passwords.
	Hash      []byte
	Scopes    []string
	Created   time.Time
	RevokedAt *time.Time // nil while the key is valid
}

// Generate creates a key named name with scopes (validated, deduplicated,
// order kept). plaintext is to be shown to the operator once; k is what to
// store.
func Generate(name string, scopes []string, now time.Time) (plaintext string, k Key, err error) {
	if err := ValidateScopes(scopes); err != nil {
		return "", Key{}, err
	}
	var id [IDLen]byte
	var secret [SecretLen]byte
	if _, err := rand.Read(id[:]); err != nil {
		return "", Key{}, fmt.Errorf("apikey: generate: %w", err)
	}
	if _, err := rand.Read(secret[:]); err != nil {
		return "", Key{}, fmt.Errorf("apikey: generate: %w", err)
	}
	var uniq []string
	for _, s := range scopes {
		if !slices.Contains(uniq, s) {
			uniq = append(uniq, s)
		}
	}
	k = Key{
		ID:      idEncoding.EncodeToString(id[:]),
		Name:    name,
		Hash:    hash(secret[:]),
		Scopes:  uniq,
		Created: now,
	}
	return Prefix + k.ID + "_" + secretEncoding.EncodeToString(secret[:]), k, nil
}

// Parse splits plaintext into its id and raw secret. It accepts exactly the
// form Generate produces (prefix, 13-character id, 43-character canonical
// base64url secret) and fails with ErrMalformed otherwise.
func Parse(plaintext string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(plaintext, Prefix)
	if !ok {
		return "", nil, fmt.Errorf("%w: missing %q prefix", ErrMalformed, Prefix)
	}
	id, enc, ok := strings.Cut(rest, "_")
	if !ok {
		return "", nil, fmt.Errorf("%w: missing secret", ErrMalformed)
	}
	if len(id) != idChars || !validID(id) {
		return "", nil, fmt.Errorf("%w: bad id", ErrMalformed)
	}
	if len(enc) != secretChars {
		return "", nil, fmt.Errorf("%w: bad secret length", ErrMalformed)
	}
	secret, err = secretEncoding.DecodeString(enc)
	if err != nil || len(secret) != SecretLen {
		return "", nil, fmt.Errorf("%w: bad secret encoding", ErrMalformed)
	}
	return id, secret, nil
}

// validID checks the alphabet and that the id decodes canonically (the last
// character carries unused bits that must be zero).
func validID(id string) bool {
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	b, err := idEncoding.DecodeString(id)
	return err == nil && idEncoding.EncodeToString(b) == id
}

// Check reports whether plaintext is this key: nil on a match, ErrMalformed,
// ErrMismatch (other id or wrong secret), or ErrRevoked. Revocation is only
// reported to someone who holds the secret. The hash comparison is
// constant-time.
func (k Key) Check(plaintext string) error {
	id, secret, err := Parse(plaintext)
	if err != nil {
		return err
	}
	// The id is public, so comparing it in variable time leaks nothing.
	if id != k.ID || subtle.ConstantTimeCompare(hash(secret), k.Hash) != 1 {
		return ErrMismatch
	}
	if k.RevokedAt != nil {
		return ErrRevoked
	}
	return nil
}

// HasScope reports whether k holds scope s.
func (k Key) HasScope(s string) bool { return slices.Contains(k.Scopes, s) }

// ValidateScopes checks that scopes is non-empty and names only Scope*
// constants; the error names the first bad scope and matches ErrBadScope.
func ValidateScopes(scopes []string) error {
	if len(scopes) == 0 {
		return fmt.Errorf("%w: at least one of %s, %s, %s is required", ErrBadScope, ScopeTunnels, ScopeTickets, ScopeWings)
	}
	for _, s := range scopes {
		switch s {
		case ScopeTunnels, ScopeTickets, ScopeWings:
		default:
			return fmt.Errorf("%w: unknown scope %q (want %s, %s or %s)", ErrBadScope, s, ScopeTunnels, ScopeTickets, ScopeWings)
		}
	}
	return nil
}

func hash(secret []byte) []byte {
	h := sha256.Sum256(secret)
	return h[:]
}
