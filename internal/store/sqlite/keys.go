package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

const apiKeyColumns = `id, name, hash, scopes, created_us, revoked_us`

func scanAPIKey(s scanner) (*store.APIKey, error) {
	var (
		k       store.APIKey
		scopes  string
		created int64
		revoked sql.NullInt64
	)
	if err := s.Scan(&k.ID, &k.Name, &k.Hash, &scopes, &created, &revoked); err != nil {
		return nil, err
	}
	var err error
	if k.Scopes, err = fromList(scopes); err != nil {
		return nil, err
	}
	k.Created, k.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return &k, nil
}

// CreateAPIKey implements store.Store.
func (db *DB) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := db.writer.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`)
		VALUES (?, ?, ?, ?, ?, ?)`,
		k.ID, k.Name, blob(k.Hash), list(k.Scopes), micros(k.Created), nullMicros(k.RevokedAt))
	if err != nil {
		return wrap(fmt.Sprintf("create api key %q", k.ID), err)
	}
	return nil
}

// GetAPIKey implements store.Store.
func (db *DB) GetAPIKey(ctx context.Context, id string) (*store.APIKey, error) {
	row := db.reader.QueryRowContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id)
	k, err := scanAPIKey(row)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get api key %q", id), err)
	}
	return k, nil
}

// ListAPIKeys implements store.Store.
func (db *DB) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := db.reader.QueryContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_us, id`)
	if err != nil {
		return nil, wrap("list api keys", err)
	}
	defer rows.Close()
	var ks []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, wrap("list api keys", err)
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list api keys", err)
	}
	return ks, nil
}

// RevokeAPIKey implements store.Store.
func (db *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return execOne(ctx, db.writer, fmt.Sprintf("revoke api key %q", id),
		`UPDATE api_keys SET revoked_us = coalesce(revoked_us, ?) WHERE id = ?`, micros(at), id)
}

const signingKeyColumns = `id, secret, created_us, retired_us`

func scanSigningKey(s scanner) (*store.SigningKey, error) {
	var (
		k       store.SigningKey
		created int64
		retired sql.NullInt64
	)
	if err := s.Scan(&k.ID, &k.Secret, &created, &retired); err != nil {
		return nil, err
	}
	k.Created, k.RetiredAt = fromMicros(created), fromNullMicros(retired)
	return &k, nil
}

// CreateSigningKey implements store.Store.
func (db *DB) CreateSigningKey(ctx context.Context, k *store.SigningKey) error {
	if err := k.Validate(); err != nil {
		return err
	}
	_, err := db.writer.ExecContext(ctx, `INSERT INTO signing_keys (`+signingKeyColumns+`)
		VALUES (?, ?, ?, ?)`,
		k.ID, blob(k.Secret), micros(k.Created), nullMicros(k.RetiredAt))
	if err != nil {
		return wrap(fmt.Sprintf("create signing key %q", k.ID), err)
	}
	return nil
}

// ListSigningKeys implements store.Store.
func (db *DB) ListSigningKeys(ctx context.Context) ([]*store.SigningKey, error) {
	rows, err := db.reader.QueryContext(ctx,
		`SELECT `+signingKeyColumns+` FROM signing_keys ORDER BY created_us DESC, id DESC`)
	if err != nil {
		return nil, wrap("list signing keys", err)
	}
	defer rows.Close()
	var ks []*store.SigningKey
	for rows.Next() {
		k, err := scanSigningKey(rows)
		if err != nil {
			return nil, wrap("list signing keys", err)
		}
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list signing keys", err)
	}
	return ks, nil
}

// RetireSigningKey implements store.Store.
func (db *DB) RetireSigningKey(ctx context.Context, id string, at time.Time) error {
	return execOne(ctx, db.writer, fmt.Sprintf("retire signing key %q", id),
		`UPDATE signing_keys SET retired_us = coalesce(retired_us, ?) WHERE id = ?`, micros(at), id)
}

// DeleteSigningKey implements store.Store.
func (db *DB) DeleteSigningKey(ctx context.Context, id string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete signing key %q", id),
		`DELETE FROM signing_keys WHERE id = ?`, id)
}
