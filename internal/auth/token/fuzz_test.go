package token

import (
	"errors"
	"strings"
	"testing"
)

// FuzzVerify feeds arbitrary strings to Verify. It must not panic, must
// classify every failure as exactly one sentinel, and must accept nothing
// but the genuine tokens seeded below: any other accepted input would be a
// forgery (or a second spelling of a genuine token).
func FuzzVerify(f *testing.F) {
	fx := newFixture(f)
	genuine := map[string]bool{}
	for _, scopes := range [][]string{{ScopeHost}, {ScopeConnect, ScopeManagePorts}} {
		tok := fx.issue(f, scopes...)
		genuine[tok] = true
		f.Add(tok)
		parts := strings.Split(tok, ".")
		f.Add(parts[0] + "." + parts[1] + ".")
		f.Add(parts[0] + "." + parts[1] + "." + parts[2] + "=")
	}
	hdr := map[string]any{"alg": "none", "typ": "JWT", "kid": "k1"}
	f.Add(craft(f, hdr, validPayload(), nil, nil))
	f.Add("")
	f.Add("..")
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.AAAA")
	f.Add(`eyJhbGciOiJIUzI1NiIsImtpZCI6ImsxIn0.eyJleHAiOjFlMzA4fQ.AAAA`) // exp 1e308

	f.Fuzz(func(t *testing.T, tok string) {
		// The fixture clock stays at t0, so the genuine tokens are live.
		c, err := fx.iss.Verify(tok)
		if err == nil {
			if !genuine[tok] {
				t.Fatalf("Verify accepted a non-genuine token %q: %+v", tok, c)
			}
			if c == nil || c.TunnelID != "tun1" {
				t.Fatalf("genuine token gave claims %+v", c)
			}
			return
		}
		if c != nil {
			t.Fatal("claims returned with an error")
		}
		n := 0
		for _, s := range sentinels {
			if errors.Is(err, s) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("error %q matches %d sentinels", err, n)
		}
	})
}

func FuzzParseAuthorization(f *testing.F) {
	for _, s := range []string{"Tunnel abc", "bearer x", "  TUNNEL  a.b.c ", "Basic x", "Tunnel a b", "", "\t", "Tunnel\u00a0x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		scheme, cred, ok := ParseAuthorization(h)
		if !ok {
			if scheme != "" || cred != "" {
				t.Fatalf("not ok but returned %q %q", scheme, cred)
			}
			return
		}
		if scheme != SchemeTunnel && scheme != SchemeBearer {
			t.Fatalf("scheme %q", scheme)
		}
		if cred == "" || strings.ContainsAny(cred, " \t") {
			t.Fatalf("credential %q", cred)
		}
		// The credential appears verbatim, after the scheme.
		if !strings.HasSuffix(strings.TrimRight(h, " \t"), cred) || !strings.EqualFold(strings.TrimLeft(h, " \t")[:len(scheme)], scheme) {
			t.Fatalf("ParseAuthorization(%q) = %q %q", h, scheme, cred)
		}
		// Round trip through the canonical form.
		s2, c2, ok2 := ParseAuthorization(scheme + " " + cred)
		if !ok2 || s2 != scheme || c2 != cred {
			t.Fatalf("canonical form does not round-trip: %q %q", s2, c2)
		}
	})
}
