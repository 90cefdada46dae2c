package token

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

func keyIDs(keys []Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.ID
	}
	return out
}

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey(t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey(t0)
	if len(a.Secret) != 32 || len(a.ID) != 8 || !a.Created.Equal(t0) || a.Retired() {
		t.Errorf("key = %+v", a)
	}
	if a.ID == b.ID || string(a.Secret) == string(b.Secret) {
		t.Error("two generated keys collide")
	}
	for _, r := range a.ID {
		if !(r >= 'a' && r <= 'z' || r >= '2' && r <= '7') {
			t.Errorf("id %q has %q outside lowercase base32", a.ID, r)
		}
	}
}

func TestNewKeyringValidation(t *testing.T) {
	good := fixedKey("a1", t0)
	tests := []struct {
		name string
		keys []Key
		ok   bool
	}{
		{"empty", nil, true},
		{"one", []Key{good}, true},
		{"all retired", []Key{{ID: "r", Secret: good.Secret, RetiredAt: t0}}, true},
		{"empty id", []Key{{Secret: good.Secret}}, false},
		{"short secret", []Key{{ID: "s", Secret: make([]byte, MinSecretLen-1)}}, false},
		{"nil secret", []Key{{ID: "s"}}, false},
		{"duplicate id", []Key{good, fixedKey("a1", t0.Add(time.Hour))}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewKeyring(tc.keys)
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadKey) {
				t.Errorf("err = %v, want ErrBadKey", err)
			}
		})
	}
	r, _ := NewKeyring([]Key{good})
	if err := r.Add(good); !errors.Is(err, ErrBadKey) {
		t.Errorf("Add duplicate: err = %v, want ErrBadKey", err)
	}
}

func TestCurrent(t *testing.T) {
	old, mid, newest := fixedKey("a", t0), fixedKey("b", t0.Add(time.Hour)), fixedKey("c", t0.Add(2*time.Hour))
	tie := fixedKey("d", t0.Add(2*time.Hour)) // same Created as newest; larger id wins
	retiredNewest := fixedKey("z", t0.Add(9*time.Hour))
	retiredNewest.RetiredAt = t0

	tests := []struct {
		name string
		keys []Key
		want string // "" means none
	}{
		{"empty", nil, ""},
		{"single", []Key{old}, "a"},
		{"newest wins", []Key{mid, newest, old}, "c"},
		{"tie broken by id", []Key{tie, newest}, "d"},
		{"retired newest skipped", []Key{old, retiredNewest}, "a"},
		{"only retired", []Key{retiredNewest}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := NewKeyring(tc.keys)
			if err != nil {
				t.Fatal(err)
			}
			k, ok := r.Current()
			if ok != (tc.want != "") || k.ID != tc.want {
				t.Errorf("Current = %q, %v; want %q", k.ID, ok, tc.want)
			}
			if ok && k.Retired() {
				t.Error("Current returned a retired key")
			}
		})
	}
}

// Current must never be retired, whatever sequence of operations ran.
func TestCurrentNeverRetired(t *testing.T) {
	r, _ := NewKeyring(nil)
	check := func(step string) {
		t.Helper()
		if k, ok := r.Current(); ok && k.Retired() {
			t.Fatalf("%s: Current returned retired key %q", step, k.ID)
		}
	}
	now := t0
	for i := range 20 {
		now = now.Add(time.Minute)
		switch i % 4 {
		case 0:
			k, _ := GenerateKey(now.Add(time.Duration(i%3) * time.Hour)) // sometimes "from the future"
			if err := r.Add(k); err != nil {
				t.Fatal(err)
			}
			check("add")
		case 1:
			if _, err := r.Rotate(now); err != nil {
				t.Fatal(err)
			}
			check("rotate")
		case 2:
			if k, ok := r.Current(); ok {
				if err := r.Retire(k.ID, now); err != nil {
					t.Fatal(err)
				}
			}
			check("retire current")
		case 3:
			r.Prune(now.Add(-5 * time.Minute))
			check("prune")
		}
	}
}

func TestRetire(t *testing.T) {
	a, b := fixedKey("a", t0), fixedKey("b", t0.Add(time.Hour))
	r, _ := NewKeyring([]Key{a, b})
	if err := r.Retire("b", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if k, _ := r.Current(); k.ID != "a" {
		t.Errorf("after retiring b, Current = %q, want a", k.ID)
	}
	// Retiring again keeps the original time.
	if err := r.Retire("b", t0.Add(5*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if k, _ := r.Lookup("b"); !k.RetiredAt.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("RetiredAt = %v, want the first retirement", k.RetiredAt)
	}
	if err := r.Retire("nope", t0); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("Retire unknown: err = %v, want ErrUnknownKey", err)
	}
	if r.Remove("nope") {
		t.Error("Remove unknown = true")
	}
}

func TestRetiredKeyStillVerifiesUntilRemoved(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, ScopeHost)
	next, err := f.ring.Rotate(f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if old, _ := f.ring.Lookup("k1"); !old.Retired() {
		t.Fatal("Rotate did not retire the previous key")
	}

	if _, err := f.iss.Verify(tok); err != nil {
		t.Fatalf("token signed by retired key: %v", err)
	}
	tok2 := f.issue(t, ScopeHost)
	if h, _, _ := segments(t, tok2); h["kid"] != next.ID {
		t.Errorf("new token kid = %v, want %q", h["kid"], next.ID)
	}

	if !f.ring.Remove("k1") {
		t.Fatal("Remove = false")
	}
	if _, err := f.iss.Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("after Remove: err = %v, want ErrUnknownKey", err)
	}
	if _, err := f.iss.Verify(tok2); err != nil {
		t.Errorf("token of the current key: %v", err)
	}
}

func TestRotate(t *testing.T) {
	// Two active keys, one "from the future": Rotate must still leave the new
	// key as the only active one.
	future := fixedKey("f", t0.Add(24*time.Hour))
	r, _ := NewKeyring([]Key{fixedKey("a", t0), future})
	now := t0.Add(time.Hour)
	k, err := r.Rotate(now)
	if err != nil {
		t.Fatal(err)
	}
	if cur, _ := r.Current(); cur.ID != k.ID {
		t.Errorf("Current = %q, want rotated key %q", cur.ID, k.ID)
	}
	for _, kk := range r.Keys() {
		switch {
		case kk.ID == k.ID && kk.Retired():
			t.Error("new key is retired")
		case kk.ID != k.ID && !kk.RetiredAt.Equal(now):
			t.Errorf("key %q RetiredAt = %v, want %v", kk.ID, kk.RetiredAt, now)
		}
	}
	if got := len(r.Keys()); got != 3 {
		t.Errorf("len(Keys) = %d, want 3", got)
	}
}

func TestPrune(t *testing.T) {
	ret := func(id string, at time.Time) Key {
		k := fixedKey(id, t0.Add(-48*time.Hour))
		k.RetiredAt = at
		return k
	}
	r, _ := NewKeyring([]Key{
		fixedKey("active", t0.Add(-72*time.Hour)), // old but active: never pruned
		ret("r1", t0.Add(-3*time.Hour)),
		ret("r2", t0.Add(-2*time.Hour)),
		ret("r3", t0.Add(-time.Hour)),
	})
	got := r.Prune(t0.Add(-time.Hour)) // strictly before the cutoff
	if ids := keyIDs(got); !slices.Equal(ids, []string{"r1", "r2"}) {
		t.Errorf("Prune = %q, want [r1 r2]", ids)
	}
	if ids := keyIDs(r.Keys()); !slices.Equal(ids, []string{"active", "r3"}) {
		t.Errorf("left = %q, want [active r3]", ids)
	}
	if got := r.Prune(t0.Add(-time.Hour)); len(got) != 0 {
		t.Errorf("second Prune = %q, want none", keyIDs(got))
	}
}

// Issuer.Prune keeps a retired key exactly as long as a token it signed can
// still pass Verify.
func TestIssuerPruneCutoff(t *testing.T) {
	f := newFixture(t)
	tok, _, err := f.iss.Issue(grant("tun1", []string{ScopeHost}, DefaultMaxTTL))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ring.Rotate(t0); err != nil {
		t.Fatal(err)
	}
	last := DefaultMaxTTL + DefaultLeeway - time.Second
	f.clock.Advance(last)
	if _, err := f.iss.Verify(tok); err != nil {
		t.Fatalf("at +%v the token should still verify: %v", last, err)
	}
	if p := f.iss.Prune(); len(p) != 0 {
		t.Fatalf("Prune removed %q while a token could still verify", keyIDs(p))
	}
	f.clock.Advance(2 * time.Second)
	if _, err := f.iss.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("token should have expired: %v", err)
	}
	if p := f.iss.Prune(); !slices.Equal(keyIDs(p), []string{"k1"}) {
		t.Errorf("Prune = %q, want [k1]", keyIDs(p))
	}
}

func TestKeyringCopies(t *testing.T) {
	k := fixedKey("a", t0)
	orig := string(k.Secret)
	r, _ := NewKeyring([]Key{k})
	k.Secret[0] ^= 0xff // caller's slice changes after handing it over
	for _, got := range []func() Key{
		func() Key { c, _ := r.Current(); return c },
		func() Key { c, _ := r.Lookup("a"); return c },
		func() Key { return r.Keys()[0] },
	} {
		c := got()
		if string(c.Secret) != orig {
			t.Fatal("ring shares the secret passed to NewKeyring")
		}
		c.Secret[0] ^= 0xff
	}
	if c, _ := r.Current(); string(c.Secret) != orig {
		t.Error("ring shares secrets it returns")
	}
}

// Readers verify and issue while an admin rotates, retires and prunes; run
// with -race.
func TestConcurrentVerifyDuringRotate(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, ScopeConnect)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.iss.Verify(tok); err != nil {
					errs <- err
					return
				}
				fresh, _, err := f.iss.Issue(grant("tun1", []string{ScopeHost}, time.Minute))
				if err != nil {
					errs <- err
					return
				}
				// The key that signed fresh may be retired meanwhile, but it
				// is never removed in this test, so it must verify.
				if _, err := f.iss.Verify(fresh); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for range 200 {
		if _, err := f.ring.Rotate(f.clock.Now()); err != nil {
			t.Fatal(err)
		}
		_ = f.ring.Keys()
		f.ring.Prune(t0.Add(-time.Hour)) // nothing retired that early: no-op
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
