package apikey

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParse: Parse never panics, fails only with ErrMalformed, and whatever
// it accepts is the unique canonical spelling of (id, secret).
func FuzzParse(f *testing.F) {
	p, _, err := Generate("seed", []string{ScopeTunnels}, time.Unix(0, 0))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{p, p[:len(p)-1], p + "A", "", "wrn_", "wrn__", "wrn_a_b", "wrn_aaaaaaaaaaaaa_" + strings.Repeat("_", 43), "wrn_aaaaaaaaaaaaa__" + strings.Repeat("A", 42)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		id, secret, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) || id != "" || secret != nil {
				t.Fatalf("Parse(%q) = %q, %x, %v", in, id, secret, err)
			}
			return
		}
		if len(secret) != SecretLen || strings.Contains(id, "_") {
			t.Fatalf("Parse(%q) = id %q, %d-byte secret", in, id, len(secret))
		}
		if re := Prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret); re != in {
			t.Fatalf("Parse(%q) accepted a non-canonical form of %q", in, re)
		}
		k := Key{ID: id, Hash: hash(secret)}
		if err := k.Check(in); err != nil {
			t.Fatalf("Check of parsed key: %v", err)
		}
	})
}
