package token

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewConfig(t *testing.T) {
	ring, _ := NewKeyring(nil)
	if _, err := New(Config{Issuer: testIssuer}); err == nil {
		t.Error("New without Keys: want error")
	}
	if _, err := New(Config{Keys: ring}); err == nil {
		t.Error("New without Issuer: want error")
	}
	i, err := New(Config{Keys: ring, Issuer: testIssuer})
	if err != nil {
		t.Fatal(err)
	}
	if i.maxTTL != DefaultMaxTTL || i.leeway != DefaultLeeway || i.now == nil {
		t.Errorf("defaults: maxTTL %v leeway %v now nil=%v", i.maxTTL, i.leeway, i.now == nil)
	}
	i, _ = New(Config{Keys: ring, Issuer: testIssuer, Leeway: -1})
	if i.leeway != 0 {
		t.Errorf("negative leeway: got %v, want 0", i.leeway)
	}
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	all := []string{ScopeCreate, ScopeManage, ScopeManagePorts, ScopeHost, ScopeInspect, ScopeConnect}
	tests := []struct {
		name   string
		scopes []string
		want   []string
	}{
		{"create", []string{ScopeCreate}, []string{ScopeCreate}},
		{"manage", []string{ScopeManage}, []string{ScopeManage}},
		{"manage:ports", []string{ScopeManagePorts}, []string{ScopeManagePorts}},
		{"host", []string{ScopeHost}, []string{ScopeHost}},
		{"inspect", []string{ScopeInspect}, []string{ScopeInspect}},
		{"connect", []string{ScopeConnect}, []string{ScopeConnect}},
		{"host+connect", []string{ScopeHost, ScopeConnect}, []string{ScopeHost, ScopeConnect}},
		{"duplicates dropped, order kept", []string{ScopeConnect, ScopeHost, ScopeConnect}, []string{ScopeConnect, ScopeHost}},
		{"all", all, all},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok, exp, err := f.iss.Issue(grant("tun1", tc.scopes, 90*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			if want := t0.Add(90 * time.Minute); !exp.Equal(want) {
				t.Errorf("exp = %v, want %v", exp, want)
			}
			c, err := f.iss.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if c.TunnelID != "tun1" || c.ClusterID != "" || c.Issuer != testIssuer || c.KeyID != "k1" {
				t.Errorf("claims = %+v", c)
			}
			if !c.Expiry.Equal(exp) || !c.IssuedAt.Equal(t0) {
				t.Errorf("expiry %v iat %v, want %v %v", c.Expiry, c.IssuedAt, exp, t0)
			}
			if !slices.Equal(c.Scopes, tc.want) {
				t.Errorf("scopes = %q, want %q", c.Scopes, tc.want)
			}
			for _, s := range all {
				if got, want := c.HasScope(s), slices.Contains(tc.want, s); got != want {
					t.Errorf("HasScope(%q) = %v, want %v", s, got, want)
				}
			}
		})
	}
}

func TestHasScopeAnyOf(t *testing.T) {
	c := &Claims{Scopes: []string{ScopeHost}}
	if !c.HasScope(ScopeManage, ScopeManagePorts, ScopeHost) {
		t.Error("HasScope(manage, manage:ports, host) = false, want true")
	}
	if c.HasScope(ScopeManage, ScopeConnect) {
		t.Error("HasScope(manage, connect) = true, want false")
	}
	if c.HasScope() {
		t.Error("HasScope() = true, want false")
	}
}

// The wire format is what TS/C# clients decode: check names and types.
func TestWireFormat(t *testing.T) {
	f := newFixture(t)
	tok := f.issue(t, ScopeHost, ScopeConnect)
	h, p, _ := segments(t, tok)
	if h["alg"] != "HS256" || h["kid"] != "k1" || h["typ"] != "JWT" {
		t.Errorf("header = %v", h)
	}
	want := map[string]any{
		"tunnelId":  "tun1",
		"clusterId": "",
		"scp":       "host connect",
		"iss":       testIssuer,
		"iat":       float64(t0.Unix()),
		"nbf":       float64(t0.Unix()),
		"exp":       float64(t0.Add(time.Hour).Unix()),
		// warren's own, binding the token to one tunnel instance.
		"tunnelCreatedUs": float64(created.UnixMicro()),
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("payload[%q] = %#v, want %#v", k, p[k], v)
		}
	}
	if len(p) != len(want) {
		t.Errorf("payload has extra claims: %v", p)
	}
	// exp must be an integer literal (unix seconds), not 1.7e+09.
	_, _, parts := segments(t, tok)
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if !strings.Contains(string(raw), `"exp":`+strconv.FormatInt(t0.Add(time.Hour).Unix(), 10)+`,`) {
		t.Errorf("exp not an integer in %s", raw)
	}
	if !strings.Contains(string(raw), `"tunnelCreatedUs":`+strconv.FormatInt(created.UnixMicro(), 10)+`,`) {
		t.Errorf("tunnelCreatedUs not an integer in %s", raw)
	}
}

func TestIssueErrors(t *testing.T) {
	tests := []struct {
		name   string
		tunnel string
		scopes []string
		ttl    time.Duration
		want   error // nil: any error
	}{
		{"unknown scope", "tun1", []string{"admin"}, time.Hour, ErrBadScope},
		{"unknown among known", "tun1", []string{ScopeHost, "Host"}, time.Hour, ErrBadScope},
		{"space-joined scopes", "tun1", []string{"host connect"}, time.Hour, ErrBadScope},
		{"no scopes", "tun1", nil, time.Hour, ErrBadScope},
		{"empty tunnel", "", []string{ScopeHost}, time.Hour, nil},
		{"zero ttl", "tun1", []string{ScopeHost}, 0, nil},
		{"negative ttl", "tun1", []string{ScopeHost}, -time.Second, nil},
		{"ttl above max", "tun1", []string{ScopeHost}, DefaultMaxTTL + time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok, _, err := f.iss.Issue(grant(tc.tunnel, tc.scopes, tc.ttl))
			if err == nil || tok != "" {
				t.Fatalf("Issue = %q, %v; want error", tok, err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("max ttl allowed", func(t *testing.T) {
		f := newFixture(t)
		if _, _, err := f.iss.Issue(grant("tun1", []string{ScopeHost}, DefaultMaxTTL)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no current key", func(t *testing.T) {
		f := newFixture(t)
		if err := f.ring.Retire("k1", t0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.iss.Issue(grant("tun1", []string{ScopeHost}, time.Hour)); !errors.Is(err, ErrNoKey) {
			t.Errorf("err = %v, want ErrNoKey", err)
		}
	})
}

func TestVerifyClock(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration // after issuing at t0 with a 1h TTL
		want    error
	}{
		{"fresh", 0, nil},
		{"just before exp", time.Hour - time.Second, nil},
		{"at exp, within leeway", time.Hour, nil},
		{"exp + leeway - 1s", time.Hour + DefaultLeeway - time.Second, nil},
		{"exp + leeway", time.Hour + DefaultLeeway, ErrExpired},
		{"long expired", 48 * time.Hour, ErrExpired},
		{"clock behind, within leeway", -DefaultLeeway + time.Second, nil},
		{"clock behind beyond leeway", -DefaultLeeway - time.Second, ErrNotYetValid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			tok := f.issue(t, ScopeHost)
			f.clock.Advance(tc.advance)
			_, err := f.iss.Verify(tok)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Errorf("Verify after %v: err = %v, want %v", tc.advance, err, tc.want)
			}
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	f := newFixture(t)
	good := f.issue(t, ScopeHost)
	_, _, parts := segments(t, good)
	hdr := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}
	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range m {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signWith := func(m jwt.SigningMethod, key any) string {
		tk := jwt.NewWithClaims(m, jwt.MapClaims(validPayload()))
		tk.Header["kid"] = "k1"
		s, err := tk.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Tampered payload: same signature, scope upgraded to manage.
	_, p, _ := segments(t, good)
	p["scp"] = "manage"
	tamperedPayload := strings.Split(craft(t, hdr, p, nil, nil), ".")
	tamperedPayloadTok := parts[0] + "." + tamperedPayload[1] + "." + parts[2]

	// Tampered signature: flip one bit of the decoded signature.
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	sig[0] ^= 1
	tamperedSigTok := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	// Non-canonical base64: the last character of a 32-byte signature
	// carries 2 unused bits; setting them decodes to the same bytes
	// leniently but must be rejected.
	last := parts[2][len(parts[2])-1]
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	idx := strings.IndexByte(alphabet, last)
	nonCanonical := parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + string(alphabet[idx^1])

	tests := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", ErrMalformed},
		{"one segment", "abc", ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], ErrMalformed},
		{"four segments", good + ".x", ErrMalformed},
		{"bad base64 header", "!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("nope")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"padded segments", parts[0] + "==." + parts[1] + "." + parts[2], ErrMalformed},
		{"Tunnel prefix left on", "Tunnel " + good, ErrMalformed},
		{"tampered payload", tamperedPayloadTok, ErrBadSignature},
		{"tampered signature", tamperedSigTok, ErrBadSignature},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrBadSignature},
		{"non-canonical signature base64", nonCanonical, ErrMalformed},
		{"alg none", craft(t, with(hdr, "alg", "none"), validPayload(), nil, nil), ErrBadSignature},
		{"alg None", craft(t, with(hdr, "alg", "None"), validPayload(), nil, nil), ErrBadSignature},
		{"alg missing", craft(t, with(hdr, "alg", nil), validPayload(), hs256, f.key.Secret), ErrBadSignature},
		{"alg HS384 with the right secret", craft(t, with(hdr, "alg", "HS384"), validPayload(), hs384, f.key.Secret), ErrBadSignature},
		{"alg RS256 header, HMAC signature", craft(t, with(hdr, "alg", "RS256"), validPayload(), hs256, f.key.Secret), ErrBadSignature},
		{"real RS256", signWith(jwt.SigningMethodRS256, rsaKey), ErrBadSignature},
		{"real ES256", signWith(jwt.SigningMethodES256, ecKey), ErrBadSignature},
		{"unknown kid", craft(t, with(hdr, "kid", "nope"), validPayload(), hs256, f.key.Secret), ErrUnknownKey},
		{"missing kid", craft(t, with(hdr, "kid", nil), validPayload(), hs256, f.key.Secret), ErrMalformed},
		{"numeric kid", craft(t, with(hdr, "kid", 1), validPayload(), hs256, f.key.Secret), ErrMalformed},
		{"signed with another secret", craft(t, hdr, validPayload(), hs256, make([]byte, 32)), ErrBadSignature},
		{"wrong issuer", craft(t, hdr, with(validPayload(), "iss", "https://evil.test"), hs256, f.key.Secret), ErrBadIssuer},
		{"issuer trailing slash", craft(t, hdr, with(validPayload(), "iss", testIssuer+"/"), hs256, f.key.Secret), ErrBadIssuer},
		{"wrong issuer and expired", craft(t, hdr, with(with(validPayload(), "iss", "x"), "exp", t0.Add(-time.Hour).Unix()), hs256, f.key.Secret), ErrBadIssuer},
		{"missing issuer", craft(t, hdr, with(validPayload(), "iss", nil), hs256, f.key.Secret), ErrMalformed},
		{"missing exp", craft(t, hdr, with(validPayload(), "exp", nil), hs256, f.key.Secret), ErrMalformed},
		{"exp as string", craft(t, hdr, with(validPayload(), "exp", "soon"), hs256, f.key.Secret), ErrMalformed},
		{"expired", craft(t, hdr, with(validPayload(), "exp", t0.Add(-time.Hour).Unix()), hs256, f.key.Secret), ErrExpired},
		{"nbf in future", craft(t, hdr, with(validPayload(), "nbf", t0.Add(time.Minute).Unix()), hs256, f.key.Secret), ErrNotYetValid},
		{"iat in future", craft(t, hdr, with(validPayload(), "iat", t0.Add(time.Minute).Unix()), hs256, f.key.Secret), ErrNotYetValid},
		{"missing tunnelId", craft(t, hdr, with(validPayload(), "tunnelId", nil), hs256, f.key.Secret), ErrMalformed},
		{"missing scp", craft(t, hdr, with(validPayload(), "scp", nil), hs256, f.key.Secret), ErrMalformed},
		{"scp as array", craft(t, hdr, with(validPayload(), "scp", []string{"host"}), hs256, f.key.Secret), ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := f.iss.Verify(tc.tok)
			if err == nil {
				t.Fatalf("Verify accepted: %+v", c)
			}
			if c != nil {
				t.Errorf("claims non-nil on error")
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			assertOneSentinel(t, err)
		})
	}

	// Sanity: the hand-crafted valid token verifies, so the rejections above
	// come from the one thing each case changed.
	if _, err := f.iss.Verify(craft(t, hdr, validPayload(), hs256, f.key.Secret)); err != nil {
		t.Fatalf("crafted valid token rejected: %v", err)
	}
}

// Verify keeps scope names it does not know, but HasScope never matches them
// against real scopes.
func TestVerifyKeepsUnknownScopes(t *testing.T) {
	f := newFixture(t)
	hdr := map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}
	p := validPayload()
	p["scp"] = "  host   future:thing "
	c, err := f.iss.Verify(craft(t, hdr, p, hs256, f.key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scopes, []string{"host", "future:thing"}) {
		t.Errorf("scopes = %q", c.Scopes)
	}
	if c.HasScope(ScopeManage) {
		t.Error("HasScope(manage) = true")
	}
}

func assertOneSentinel(t testing.TB, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("error %q matches %d sentinels, want exactly 1", err, n)
	}
	if errors.Is(err, jwt.ErrTokenMalformed) || errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("error %q leaks a jwt sentinel", err)
	}
}

// A token names the tunnel instance it was issued for: a tunnel deleted and
// created again under the same ID (another creation time) refuses it, and
// so does every instance for a token without the claim.
func TestIssueBindsInstance(t *testing.T) {
	f := newFixture(t)
	c, err := f.iss.Verify(f.issue(t, ScopeManage))
	if err != nil {
		t.Fatal(err)
	}
	if !c.TunnelCreated.Equal(created) || !c.SameInstance(created) || !c.SameInstance(created.In(time.FixedZone("x", 3600))) {
		t.Errorf("TunnelCreated %v, want %v", c.TunnelCreated, created)
	}
	if c.SameInstance(created.Add(time.Microsecond)) || c.SameInstance(time.Time{}) {
		t.Error("the token matches another instance")
	}
	legacy, err := f.iss.Verify(craft(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}, validPayload(), hs256, f.key.Secret))
	if err != nil {
		t.Fatal(err)
	}
	if !legacy.TunnelCreated.IsZero() || legacy.SameInstance(created) {
		t.Errorf("a token without tunnelCreatedUs matches: %+v", legacy)
	}
	g := grant("tun1", []string{ScopeHost}, time.Hour)
	g.TunnelCreated = time.Time{}
	if tok, _, err := f.iss.Issue(g); err == nil {
		t.Errorf("Issue without a creation time = %q", tok)
	}
}

// NotAfter caps the expiry of a token obtained with another token.
func TestIssueNotAfter(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name     string
		notAfter time.Time
		want     time.Time // zero: ErrExpired
	}{
		{"no cap", time.Time{}, t0.Add(time.Hour)},
		{"later than ttl", t0.Add(2 * time.Hour), t0.Add(time.Hour)},
		{"earlier than ttl", t0.Add(10 * time.Minute), t0.Add(10 * time.Minute)},
		{"sub-second rounds down", t0.Add(10*time.Minute + 900*time.Millisecond), t0.Add(10 * time.Minute)},
		{"now", t0, time.Time{}},
		{"within the second", t0.Add(500 * time.Millisecond), time.Time{}},
		{"past", t0.Add(-time.Minute), time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := grant("tun1", []string{ScopeConnect}, time.Hour)
			g.NotAfter = tc.notAfter
			tok, exp, err := f.iss.Issue(g)
			if tc.want.IsZero() {
				if !errors.Is(err, ErrExpired) || tok != "" {
					t.Fatalf("Issue = %q, %v; want ErrExpired", tok, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := f.iss.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(tc.want) || !c.Expiry.Equal(tc.want) {
				t.Errorf("exp %v (claims %v), want %v", exp, c.Expiry, tc.want)
			}
		})
	}
}
