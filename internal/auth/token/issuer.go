package token

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Config configures an Issuer. Zero durations mean the documented default.
type Config struct {
	// Keys signs and verifies. Required.
	Keys *Keyring

	// Issuer is the iss claim written and required: the relay's public base
	// URL, compared byte for byte (so pass it in one canonical form).
	// Required.
	Issuer string

	// MaxTTL is the longest lifetime Issue grants. Default 24h. It also
	// bounds how long a retired key must be kept (see Issuer.Prune), so
	// raising it delays pruning.
	MaxTTL time.Duration

	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s:
	// tokens are checked by the relay that issued them (or a replica with a
	// synced clock), so only small skew is expected. Negative means none.
	Leeway time.Duration

	// Now returns the current time. Default time.Now; tests inject a clock.
	Now func() time.Time
}

// Defaults of Config.
const (
	DefaultMaxTTL = 24 * time.Hour
	DefaultLeeway = 30 * time.Second
)

// Issuer mints and verifies tunnel access tokens. It is safe for concurrent
// use; its Keyring may be changed while it runs.
type Issuer struct {
	keys   *Keyring
	iss    string
	maxTTL time.Duration
	leeway time.Duration
	now    func() time.Time
}

// New returns an Issuer for cfg.
func New(cfg Config) (*Issuer, error) {
	if cfg.Keys == nil {
		return nil, errors.New("token: Config.Keys is required")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("token: Config.Issuer is required")
	}
	i := &Issuer{keys: cfg.Keys, iss: cfg.Issuer, maxTTL: cfg.MaxTTL, leeway: cfg.Leeway, now: cfg.Now}
	if i.maxTTL <= 0 {
		i.maxTTL = DefaultMaxTTL
	}
	switch {
	case i.leeway == 0:
		i.leeway = DefaultLeeway
	case i.leeway < 0:
		i.leeway = 0
	}
	if i.now == nil {
		i.now = time.Now
	}
	return i, nil
}

// Keys returns the keyring the Issuer uses.
func (i *Issuer) Keys() *Keyring { return i.keys }

// Claims is a verified token's content.
type Claims struct {
	TunnelID  string
	ClusterID string // always "" for tokens warren issues
	// TunnelCreated is the creation time, to the microsecond, of the
	// tunnel instance the token was issued for; zero if the token carries
	// none (issued before tokens were bound). See SameInstance.
	TunnelCreated time.Time
	// Scopes as listed in scp. Verify keeps names it does not know (a newer
	// relay may add some); HasScope only ever matches exact names.
	Scopes   []string
	Expiry   time.Time
	IssuedAt time.Time // zero if the token has no iat
	Issuer   string
	KeyID    string // kid of the key that signed the token
}

// HasScope reports whether c carries at least one of scopes.
func (c *Claims) HasScope(scopes ...string) bool {
	for _, s := range scopes {
		if slices.Contains(c.Scopes, s) {
			return true
		}
	}
	return false
}

// SameInstance reports whether c was issued for the tunnel instance created
// at created (compared to the microsecond, the store's precision). A tunnel
// deleted and created again under the same ID is another instance, so its
// predecessor's tokens do not work on it. Tokens without the claim match
// no instance.
func (c *Claims) SameInstance(created time.Time) bool {
	return !c.TunnelCreated.IsZero() && c.TunnelCreated.UnixMicro() == created.UnixMicro()
}

// wireClaims is the JWT payload. clusterId has no omitempty: the claim is
// always present, as the SDKs expect. tunnelCreatedUs is warren's own
// (unix microseconds); the SDKs treat tokens as opaque.
type wireClaims struct {
	TunnelID      string `json:"tunnelId"`
	ClusterID     string `json:"clusterId"`
	Scope         string `json:"scp"`
	TunnelCreated int64  `json:"tunnelCreatedUs,omitempty"`
	jwt.RegisteredClaims
}

// Grant is what Issue signs.
type Grant struct {
	// TunnelID is the tunnel the token is for. Required.
	TunnelID string
	// TunnelCreated is that tunnel instance's creation time
	// (store.Tunnel.Created); the token carries it so that
	// Claims.SameInstance can refuse it on a later tunnel with the same
	// ID. Required.
	TunnelCreated time.Time
	// Scopes are deduplicated, order kept. At least one.
	Scopes []string
	// TTL is the lifetime from now, 0 < TTL <= MaxTTL.
	TTL time.Duration
	// NotAfter, if not zero, caps the expiry. A token obtained by
	// presenting another token passes that token's expiry, so renewing
	// cannot extend a leaked token's life. Default zero: no cap.
	NotAfter time.Time
}

// Issue signs a token for g. exp is whole unix seconds, so the returned
// expiry is now+TTL (or NotAfter, if earlier) truncated to the second.
// Errors: ErrBadScope for an empty or unknown scope, ErrExpired when
// NotAfter is not in the future, ErrNoKey when the keyring has no current
// key.
func (i *Issuer) Issue(g Grant) (tok string, exp time.Time, err error) {
	tunnelID, scopes, ttl := g.TunnelID, g.Scopes, g.TTL
	if tunnelID == "" {
		return "", time.Time{}, errors.New("token: empty tunnel id")
	}
	if g.TunnelCreated.IsZero() {
		return "", time.Time{}, fmt.Errorf("token: no creation time for tunnel %q", tunnelID)
	}
	if ttl <= 0 || ttl > i.maxTTL {
		return "", time.Time{}, fmt.Errorf("token: ttl %v outside (0, %v]", ttl, i.maxTTL)
	}
	if len(scopes) == 0 {
		return "", time.Time{}, fmt.Errorf("%w: no scopes", ErrBadScope)
	}
	uniq := make([]string, 0, len(scopes))
	for _, s := range scopes {
		if !ValidScope(s) {
			return "", time.Time{}, fmt.Errorf("%w: %q", ErrBadScope, s)
		}
		if !slices.Contains(uniq, s) {
			uniq = append(uniq, s)
		}
	}
	key, ok := i.keys.signer()
	if !ok {
		return "", time.Time{}, ErrNoKey
	}
	now := i.now()
	iat := jwt.NewNumericDate(now)
	expiry := jwt.NewNumericDate(now.Add(ttl))
	if !g.NotAfter.IsZero() && g.NotAfter.Before(expiry.Time) {
		expiry = jwt.NewNumericDate(g.NotAfter)
		if !expiry.After(now) {
			return "", time.Time{}, fmt.Errorf("%w: the presented token expires at %s", ErrExpired, g.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, wireClaims{
		TunnelID:      tunnelID,
		Scope:         strings.Join(uniq, " "),
		TunnelCreated: g.TunnelCreated.UnixMicro(),
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.iss,
			ExpiresAt: expiry,
			IssuedAt:  iat,
			NotBefore: iat,
		},
	})
	t.Header["kid"] = key.ID
	tok, err = t.SignedString(key.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("token: sign: %w", err)
	}
	return tok, expiry.Time, nil
}

// Verify checks tok and returns its claims. Only HS256 is accepted,
// whatever the header says. The error matches exactly one of ErrMalformed,
// ErrBadSignature, ErrUnknownKey, ErrExpired, ErrNotYetValid and
// ErrBadIssuer; the time and issuer errors are only reported for tokens whose
// signature verified. exp must be later than now-Leeway.
func (i *Issuer) Verify(tok string) (*Claims, error) {
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		// Strict base64: otherwise the unused low bits of the last character
		// can be flipped without changing the decoded bytes, so one token
		// would have several valid spellings.
		jwt.WithStrictDecoding(),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(i.iss),
		jwt.WithLeeway(i.leeway),
		jwt.WithTimeFunc(i.now),
	)
	var wc wireClaims
	var kid string
	_, err := p.ParseWithClaims(tok, &wc, func(t *jwt.Token) (any, error) {
		id, ok := t.Header["kid"].(string)
		if !ok || id == "" {
			return nil, errMissingKid
		}
		kid = id
		k, ok := i.keys.lookup(id)
		if !ok {
			return nil, ErrUnknownKey
		}
		return k.Secret, nil
	})
	if err != nil {
		return nil, classify(err)
	}
	if wc.TunnelID == "" {
		return nil, fmt.Errorf("%w: no tunnelId", ErrMalformed)
	}
	scopes := strings.Fields(wc.Scope)
	if len(scopes) == 0 {
		return nil, fmt.Errorf("%w: no scp", ErrMalformed)
	}
	c := &Claims{
		TunnelID:  wc.TunnelID,
		ClusterID: wc.ClusterID,
		Scopes:    scopes,
		Expiry:    wc.ExpiresAt.Time,
		Issuer:    wc.Issuer,
		KeyID:     kid,
	}
	if wc.IssuedAt != nil {
		c.IssuedAt = wc.IssuedAt.Time
	}
	if wc.TunnelCreated != 0 {
		c.TunnelCreated = time.UnixMicro(wc.TunnelCreated).UTC()
	}
	return c, nil
}

// Prune removes the retired keys that can no longer verify any live token
// and returns them for deletion from the store. A key retired at R signed
// nothing after R, every token it signed expired by R+MaxTTL, and Verify
// accepts until exp+Leeway, so keys retired before now-MaxTTL-Leeway go.
func (i *Issuer) Prune() []Key {
	return i.keys.Prune(i.now().Add(-i.maxTTL - i.leeway))
}

var errMissingKid = errors.New("no kid header")

// classify maps a jwt error to exactly one sentinel, keeping the jwt text.
// Checks on genuine tokens come after the ones on forgeries, and issuer
// before time, so a token that is both foreign and expired is not told to
// refresh.
func classify(err error) error {
	var s error
	switch {
	case errors.Is(err, errMissingKid):
		s = ErrMalformed
	case errors.Is(err, ErrUnknownKey):
		s = ErrUnknownKey
	case errors.Is(err, jwt.ErrTokenMalformed):
		s = ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid),
		errors.Is(err, jwt.ErrTokenUnverifiable): // unknown or missing alg
		s = ErrBadSignature
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		s = ErrBadIssuer
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing),
		errors.Is(err, jwt.ErrInvalidType):
		s = ErrMalformed
	case errors.Is(err, jwt.ErrTokenNotValidYet),
		errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		s = ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenExpired):
		s = ErrExpired
	default:
		s = ErrMalformed
	}
	return fmt.Errorf("%w: %s", s, err.Error())
}
