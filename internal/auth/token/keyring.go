package token

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MinSecretLen is the shortest signing secret a Keyring accepts: RFC 7518
// §3.2 requires an HS256 key of at least the hash size.
const MinSecretLen = 32

// Key is one signing key. The zero RetiredAt means the key is active.
type Key struct {
	// ID is the key id carried in the token's kid header.
	ID string
	// Secret is the HMAC-SHA256 key, at least MinSecretLen bytes.
	Secret []byte
	// Created orders keys: the newest active key signs.
	Created time.Time
	// RetiredAt is when the key stopped signing; zero while it is active.
	// A retired key still verifies until it is removed from the ring.
	RetiredAt time.Time
}

// Retired reports whether k no longer signs.
func (k Key) Retired() bool { return !k.RetiredAt.IsZero() }

// clone copies k so callers never share a Secret with the ring.
func (k Key) clone() Key {
	k.Secret = bytes.Clone(k.Secret)
	return k
}

// keyIDEncoding is lowercase base32 without padding: safe in URLs, file
// names and store keys, and case-insensitive stores cannot merge two ids.
var keyIDEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// GenerateKey returns a new active key created at now: 32 random secret bytes
// and a random 8-character id.
func GenerateKey(now time.Time) (Key, error) {
	var id [5]byte
	secret := make([]byte, 32)
	if _, err := rand.Read(id[:]); err != nil {
		return Key{}, fmt.Errorf("token: generate key: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("token: generate key: %w", err)
	}
	return Key{ID: keyIDEncoding.EncodeToString(id[:]), Secret: secret, Created: now}, nil
}

// Keyring is the set of signing keys. It is safe for concurrent use: tokens
// can be issued and verified while an operator rotates keys.
//
// Secrets are copied in and out; a Keyring never mutates a secret in place,
// so a key looked up for one verification stays intact even if it is removed
// meanwhile.
type Keyring struct {
	mu      sync.RWMutex
	keys    map[string]Key
	current string // id of the signing key; "" if none
}

// NewKeyring returns a ring holding keys (copied). The keys may all be
// retired, or none given; Issue then fails with ErrNoKey until a key is added.
// It fails with ErrBadKey on an unusable or duplicate key.
func NewKeyring(keys []Key) (*Keyring, error) {
	r := &Keyring{keys: make(map[string]Key, len(keys))}
	for _, k := range keys {
		if err := r.add(k); err != nil {
			return nil, err
		}
	}
	r.pickCurrent()
	return r, nil
}

// Current returns the signing key: the newest (by Created, then ID) key that
// is not retired. ok is false when every key is retired or the ring is empty.
func (r *Keyring) Current() (k Key, ok bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.current == "" {
		return Key{}, false
	}
	return r.keys[r.current].clone(), true
}

// Lookup returns the key with the given id, retired or not.
func (r *Keyring) Lookup(id string) (Key, bool) {
	k, ok := r.lookup(id)
	return k.clone(), ok
}

// lookup is Lookup without the copy, for verification: the ring never
// mutates a stored secret, so sharing it read-only is safe.
func (r *Keyring) lookup(id string) (Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.keys[id]
	return k, ok
}

// signer returns the current key without a copy (see lookup).
func (r *Keyring) signer() (Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.current == "" {
		return Key{}, false
	}
	return r.keys[r.current], true
}

// Keys returns a copy of every key, oldest first (by Created, then ID), for
// the caller to persist.
func (r *Keyring) Keys() []Key {
	r.mu.RLock()
	out := make([]Key, 0, len(r.keys))
	for _, k := range r.keys {
		out = append(out, k.clone())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, compareKeys)
	return out
}

// Add inserts k (copied). An active k becomes the signing key if it is the
// newest active key. It fails with ErrBadKey on an unusable or duplicate key.
func (r *Keyring) Add(k Key) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.add(k); err != nil {
		return err
	}
	r.pickCurrent()
	return nil
}

// Retire marks key id as retired at at: it stops signing but keeps
// verifying. Retiring a key that is already retired keeps its original
// RetiredAt, because signing stopped then. Retire fails with ErrUnknownKey if
// id is not in the ring.
func (r *Keyring) Retire(id string, at time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k, ok := r.keys[id]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	if !k.Retired() {
		k.RetiredAt = at
		r.keys[id] = k
		r.pickCurrent()
	}
	return nil
}

// Remove deletes key id; tokens signed by it no longer verify. It reports
// whether the key was present.
func (r *Keyring) Remove(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.keys[id]; !ok {
		return false
	}
	delete(r.keys, id)
	r.pickCurrent()
	return true
}

// Rotate generates a new key created at now, adds it, and retires every
// other active key at now, all in one step, so the new key is the only
// active one whatever the Created times of the old keys. Tokens signed by
// the old keys keep verifying until those keys are pruned. The caller then
// persists Keys.
func (r *Keyring) Rotate(now time.Time) (Key, error) {
	k, err := GenerateKey(now)
	if err != nil {
		return Key{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.add(k); err != nil {
		return Key{}, err // id collision: astronomically unlikely
	}
	for id, old := range r.keys {
		if id != k.ID && !old.Retired() {
			old.RetiredAt = now
			r.keys[id] = old
		}
	}
	r.current = k.ID
	return k.clone(), nil
}

// Prune removes every retired key whose RetiredAt is before olderThan and
// returns them, oldest first, so the caller can delete them from its store.
// Active keys are never pruned. Issuer.Prune computes the safe cutoff.
func (r *Keyring) Prune(olderThan time.Time) []Key {
	r.mu.Lock()
	var out []Key
	for id, k := range r.keys {
		if k.Retired() && k.RetiredAt.Before(olderThan) {
			out = append(out, k.clone())
			delete(r.keys, id)
		}
	}
	r.mu.Unlock()
	slices.SortFunc(out, compareKeys)
	return out
}

// add validates and stores k; r.mu must be held (or r unshared).
func (r *Keyring) add(k Key) error {
	switch {
	case k.ID == "":
		return fmt.Errorf("%w: empty id", ErrBadKey)
	case len(k.Secret) < MinSecretLen:
		return fmt.Errorf("%w: key %q: secret is %d bytes, need at least %d", ErrBadKey, k.ID, len(k.Secret), MinSecretLen)
	}
	if _, dup := r.keys[k.ID]; dup {
		return fmt.Errorf("%w: duplicate id %q", ErrBadKey, k.ID)
	}
	r.keys[k.ID] = k.clone()
	return nil
}

// pickCurrent recomputes the signing key; r.mu must be held.
func (r *Keyring) pickCurrent() {
	r.current = ""
	var best Key
	for id, k := range r.keys {
		if k.Retired() {
			continue
		}
		if r.current == "" || compareKeys(k, best) > 0 {
			r.current, best = id, k
		}
	}
}

// compareKeys orders keys by Created, then ID, so "newest" is deterministic
// even when two keys share a timestamp.
func compareKeys(a, b Key) int {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}
