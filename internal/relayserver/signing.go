package relayserver

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/wing/wingtoken"
)

// loadKeyring reads the token signing keys from st, creating the first one
// on a new store, so tokens stay valid across restarts.
func loadKeyring(ctx context.Context, st store.Store, now time.Time) (*token.Keyring, error) {
	stored, err := st.ListSigningKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	keys := make([]token.Key, 0, len(stored))
	for _, k := range stored {
		tk := token.Key{ID: k.ID, Secret: k.Secret, Created: k.Created}
		if k.RetiredAt != nil {
			tk.RetiredAt = *k.RetiredAt
		}
		keys = append(keys, tk)
	}
	ring, err := token.NewKeyring(keys)
	if err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	if _, ok := ring.Current(); ok {
		return ring, nil
	}
	k, err := token.GenerateKey(now)
	if err != nil {
		return nil, err
	}
	if err := st.CreateSigningKey(ctx, &store.SigningKey{ID: k.ID, Secret: k.Secret, Created: k.Created}); err != nil {
		return nil, fmt.Errorf("save signing key: %w", err)
	}
	if err := ring.Add(k); err != nil {
		return nil, err
	}
	return ring, nil
}

// keyRetention is how long a retired signing key keeps verifying: the
// longest token lifetime any issuer on the ring grants, plus clock leeway.
var keyRetention = max(token.DefaultMaxTTL, wingtoken.MaxTTL) + token.DefaultLeeway

// rotateSigningKey makes a new signing key current and retires the others.
// Retired keys still verify the tokens they signed until those expire; then
// they are pruned from the ring and the store.
func rotateSigningKey(ctx context.Context, st store.Store, iss *token.Issuer, now time.Time) (token.Key, error) {
	ring := iss.Keys()
	k, err := token.GenerateKey(now)
	if err != nil {
		return token.Key{}, err
	}
	// Persist first: a key that signs must survive a restart.
	if err := st.CreateSigningKey(ctx, &store.SigningKey{ID: k.ID, Secret: k.Secret, Created: k.Created}); err != nil {
		return token.Key{}, fmt.Errorf("save signing key: %w", err)
	}
	for _, old := range ring.Keys() {
		if !old.Retired() {
			if err := st.RetireSigningKey(ctx, old.ID, now); err != nil {
				return token.Key{}, fmt.Errorf("retire signing key %s: %w", old.ID, err)
			}
			if err := ring.Retire(old.ID, now); err != nil {
				return token.Key{}, err
			}
		}
	}
	if err := ring.Add(k); err != nil {
		return token.Key{}, err
	}
	// One ring signs tunnel tokens (at most a day) and wing and user tokens
	// (up to a year): a retired key goes only when the longest of them it
	// could have signed has expired, not when the issuer's own MaxTTL says.
	for _, gone := range ring.Prune(now.Add(-keyRetention)) {
		if err := st.DeleteSigningKey(ctx, gone.ID); err != nil {
			return k, fmt.Errorf("delete expired signing key %s: %w", gone.ID, err)
		}
	}
	return k, nil
}
