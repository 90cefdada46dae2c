package token

import "errors"

// Sentinel errors. Verify returns an error matching exactly one of ErrMalformed,
// ErrBadSignature, ErrUnknownKey, ErrExpired, ErrNotYetValid or ErrBadIssuer;
// the wrapped text says more, for logs.
var (
	// ErrMalformed: the token is not a well-formed warren token (not three
	// base64url segments, bad JSON, missing kid, exp, tunnelId or scp, ...).
	ErrMalformed = errors.New("token: malformed")

	// ErrBadSignature: the signature does not verify, or the token names an
	// algorithm other than HS256.
	ErrBadSignature = errors.New("token: bad signature")

	// ErrUnknownKey: the kid header names a key that is not in the keyring
	// (never existed, or removed after rotation). Also returned by Keyring
	// methods given an unknown key id.
	ErrUnknownKey = errors.New("token: unknown signing key")

	// ErrExpired: a genuine token whose exp has passed (beyond the leeway).
	// The relay answers 401 and the host is expected to refresh.
	ErrExpired = errors.New("token: expired")

	// ErrNotYetValid: a genuine token whose nbf or iat lies in the future
	// (beyond the leeway), i.e. a clock problem between relay replicas.
	ErrNotYetValid = errors.New("token: not yet valid")

	// ErrBadIssuer: a genuine token whose iss is not this relay's issuer.
	ErrBadIssuer = errors.New("token: wrong issuer")

	// ErrBadScope: Issue was asked for no scope, or for a scope name that is
	// not one of the Scope* constants.
	ErrBadScope = errors.New("token: bad scope")

	// ErrNoKey: the keyring has no current (non-retired) key, so nothing can
	// be signed.
	ErrNoKey = errors.New("token: no current signing key")

	// ErrBadKey: a Key given to NewKeyring or Add is unusable (empty id,
	// secret shorter than MinSecretLen) or its id is already in the ring.
	ErrBadKey = errors.New("token: bad key")
)
