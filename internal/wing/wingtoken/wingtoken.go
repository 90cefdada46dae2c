package wingtoken

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/warrenhq/warren/internal/auth/token"
)

// Token kinds.
const (
	KindWing = "wing"
	KindUser = "user"
)

// Audience marks wing and user tokens.
const Audience = "warren-wing"

// MaxTTL is the longest lifetime Issue grants (docs/protocols/wing.md §2.2: 365 days).
const MaxTTL = 365 * 24 * time.Hour

// ErrInvalid is wrapped by every Verify failure.
var ErrInvalid = errors.New("wingtoken: invalid token")

// Claims is a token's content.
type Claims struct {
	Kind   string
	UserID string
	WingID string // wing tokens: the bound machine id, "" for any
	Pub    string // wing tokens: the bound X25519 key, "" for none
	Expiry time.Time
}

type wireClaims struct {
	Kind string `json:"kind"`
	Wing string `json:"wing,omitempty"`
	Pub  string `json:"pub,omitempty"`
	jwt.RegisteredClaims
}

// Issuer mints and verifies wing and user tokens.
type Issuer struct {
	Keys   *token.Keyring   // required
	Issuer string           // iss; required
	Now    func() time.Time // default time.Now
}

func (i *Issuer) now() time.Time {
	if i.Now == nil {
		return time.Now()
	}
	return i.Now()
}

// Issue signs c (Expiry ignored) valid for ttl (0 < ttl <= MaxTTL).
func (i *Issuer) Issue(c Claims, ttl time.Duration) (string, time.Time, error) {
	if c.Kind != KindWing && c.Kind != KindUser {
		return "", time.Time{}, fmt.Errorf("wingtoken: kind must be %q or %q, got %q", KindWing, KindUser, c.Kind)
	}
	if c.UserID == "" {
		return "", time.Time{}, errors.New("wingtoken: user id is required")
	}
	if c.Kind == KindUser && (c.WingID != "" || c.Pub != "") {
		return "", time.Time{}, errors.New("wingtoken: a user token carries no wing or pub")
	}
	if ttl <= 0 || ttl > MaxTTL {
		return "", time.Time{}, fmt.Errorf("wingtoken: ttl %v outside (0, %v]", ttl, MaxTTL)
	}
	key, ok := i.Keys.Current()
	if !ok {
		return "", time.Time{}, token.ErrNoKey
	}
	now := i.now()
	iat := jwt.NewNumericDate(now)
	exp := jwt.NewNumericDate(now.Add(ttl))
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, wireClaims{
		Kind: c.Kind, Wing: c.WingID, Pub: c.Pub,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: i.Issuer, Subject: c.UserID, Audience: jwt.ClaimStrings{Audience},
			ExpiresAt: exp, IssuedAt: iat, NotBefore: iat,
		},
	})
	t.Header["kid"] = key.ID
	s, err := t.SignedString(key.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("wingtoken: sign: %w", err)
	}
	return s, exp.Time, nil
}

// Verify checks tok and that it is of kind.
func (i *Issuer) Verify(tok, kind string) (*Claims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuer(i.Issuer),
		jwt.WithAudience(Audience),
		jwt.WithLeeway(30*time.Second),
		jwt.WithTimeFunc(i.now),
	)
	var wc wireClaims
	_, err := p.ParseWithClaims(tok, &wc, func(t *jwt.Token) (any, error) {
		id, _ := t.Header["kid"].(string)
		k, ok := i.Keys.Lookup(id)
		if !ok {
			return nil, errors.New("unknown signing key")
		}
		return k.Secret, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if wc.Kind != kind {
		return nil, fmt.Errorf("%w: a %q token, not a %q token", ErrInvalid, wc.Kind, kind)
	}
	if wc.Subject == "" {
		return nil, fmt.Errorf("%w: no sub", ErrInvalid)
	}
	return &Claims{Kind: wc.Kind, UserID: wc.Subject, WingID: wc.Wing, Pub: wc.Pub, Expiry: wc.ExpiresAt.Time}, nil
}
