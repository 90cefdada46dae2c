package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenhq/warren/internal/store"
)

const apiKeyColumns = `id, name, hash, scopes, created, revoked`

func scanAPIKey(row pgx.Row) (*store.APIKey, error) {
	var k store.APIKey
	if err := row.Scan(&k.ID, &k.Name, &k.Hash, &k.Scopes, &k.Created, &k.RevokedAt); err != nil {
		return nil, err
	}
	k.Scopes = fromList(k.Scopes)
	k.Created, k.RevokedAt = fromTS(k.Created), fromTSPtr(k.RevokedAt)
	return &k, nil
}

func scanAPIKeyRows(rows pgx.Rows) (*store.APIKey, error) { return scanAPIKey(rows) }

// CreateAPIKey implements store.Store.
func (db *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6)`,
		k.ID, k.Name, blob(k.Hash), list(k.Scopes), ts(k.Created), tsPtr(k.RevokedAt))
	if err != nil {
		return wrap(fmt.Sprintf("create api key %q", k.ID), err)
	}
	return nil
}

// GetAPIKey implements store.Store.
func (db *DB) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	k, err := scanAPIKey(db.pool.QueryRow(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = $1`, id))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get api key %q", id), err)
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (db *DB) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created, id COLLATE "C"`)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	ks, err := collect(rows, scanAPIKeyRows)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	return ks, nil
}

// RevokeAPIKey implements store.Store.
func (db *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return execOne(ctx, db.pool, fmt.Sprintf("revoke api key %q", id),
		`UPDATE api_keys SET revoked = coalesce(revoked, $1) WHERE id = $2`, ts(at), id)
}

const signingKeyColumns = `id, secret, created, retired`

func scanSigningKey(rows pgx.Rows) (*store.SigningKey, error) {
	var k store.SigningKey
	if err := rows.Scan(&k.ID, &k.Secret, &k.Created, &k.RetiredAt); err != nil {
		return nil, err
	}
	k.Created, k.RetiredAt = fromTS(k.Created), fromTSPtr(k.RetiredAt)
	return &k, nil
}

// CreateSigningKey implements store.Store.
func (db *DB) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`) VALUES ($1, $2, $3, $4)`,
		k.ID, blob(k.Secret), ts(k.Created), tsPtr(k.RetiredAt))
	if err != nil {
		return wrap(fmt.Sprintf("create signing key %q", k.ID), err)
	}
	return nil
}

// ListSigningKeys implements store.Store.
func (db *DB) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+signingKeyColumns+` FROM signing_keys
		ORDER BY created DESC, id COLLATE "C" DESC`)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	ks, err := collect(rows, scanSigningKey)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	return ks, nil
}

// RetireSigningKey implements store.Store.
func (db *DB) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	return execOne(ctx, db.pool, fmt.Sprintf("retire signing key %q", id),
		`UPDATE signing_keys SET retired = coalesce(retired, $1) WHERE id = $2`, ts(at), id)
}

// DeleteSigningKey implements store.Store.
func (db *DB) DeleteSigningKey(ctx context.Context, id string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete signing key %q", id), `DELETE FROM signing_keys WHERE id = $1`, id)
}

// ClaimWing implements store.Store: insert if absent, else read the owner
// in force. A losing insert waits for the winner's commit, so its read sees
// the winner. Should the owner be released between the two statements, the
// claim is tried again.
func (db *DB) ClaimWing(ctx context.Context, o *store.WingOwner) (*store.WingOwner, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return claim(ctx, db, fmt.Sprintf("claim wing %q", o.WingID),
		`INSERT INTO wing_owners (wing_id, user_id, created) VALUES ($1, $2, $3)
			ON CONFLICT (wing_id) DO NOTHING RETURNING wing_id, user_id, created`,
		[]any{o.WingID, o.UserID, ts(o.Created)}, scanWingOwner,
		func(ctx context.Context) (*store.WingOwner, error) { return db.GetWingOwner(ctx, o.WingID) })
}

func scanWingOwner(row pgx.Row) (*store.WingOwner, error) {
	var o store.WingOwner
	if err := row.Scan(&o.WingID, &o.UserID, &o.Created); err != nil {
		return nil, err
	}
	o.Created = fromTS(o.Created)
	return &o, nil
}

// claim runs an insert-if-absent that returns the new row; when another
// row is in force it reads that one with get. Should it be released
// between the two statements, the claim is tried again.
func claim[T any](ctx context.Context, db *DB, op, insert string, args []any,
	scan func(pgx.Row) (*T, error), get func(context.Context) (*T, error)) (*T, error) {
	for {
		w, err := scan(db.pool.QueryRow(ctx, insert, args...))
		if errors.Is(err, pgx.ErrNoRows) {
			got, err := get(ctx)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return got, err
		}
		if err != nil {
			return nil, wrap(op, err)
		}
		return w, nil
	}
}

// GetWingOwner implements store.Store.
func (db *DB) GetWingOwner(ctx context.Context, wingID string) (*store.WingOwner, error) {
	o, err := scanWingOwner(db.pool.QueryRow(ctx, `SELECT wing_id, user_id, created FROM wing_owners WHERE wing_id = $1`, wingID))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get wing owner %q", wingID), err)
	}
	return o, nil
}

// DeleteWingOwner implements store.Store.
func (db *DB) DeleteWingOwner(ctx context.Context, wingID string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete wing owner %q", wingID), `DELETE FROM wing_owners WHERE wing_id = $1`, wingID)
}
