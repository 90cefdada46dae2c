package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/warrenhq/warren/internal/store"
)

const tunnelColumns = `id, name, domain, description, labels, options, access_control,
	created_us, updated_us, expiration_us`

func scanTunnel(s scanner) (*store.Tunnel, error) {
	var (
		t                  store.Tunnel
		labels             string
		created, updated   int64
		expiration         sql.NullInt64
		options, accessCtl []byte
	)
	err := s.Scan(&t.ID, &t.Name, &t.Domain, &t.Description, &labels, &options, &accessCtl,
		&created, &updated, &expiration)
	if err != nil {
		return nil, err
	}
	if t.Labels, err = fromList(labels); err != nil {
		return nil, err
	}
	t.Options, t.AccessControl = fromBlob(options), fromBlob(accessCtl)
	t.Created, t.Updated = fromMicros(created), fromMicros(updated)
	t.Expiration = fromNullMicros(expiration)
	return &t, nil
}

// CreateTunnel implements store.Store.
func (db *DB) CreateTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := t.Validate(); err != nil {
		return err
	}
	_, err := db.writer.ExecContext(ctx, `INSERT INTO tunnels (`+tunnelColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, t.Domain, t.Description, list(t.Labels), blob(t.Options), blob(t.AccessControl),
		micros(t.Created), micros(t.Updated), nullMicros(t.Expiration))
	if err != nil {
		return wrap(fmt.Sprintf("create tunnel %q (name %q)", t.ID, t.Name), err)
	}
	return nil
}

// GetTunnel implements store.Store.
func (db *DB) GetTunnel(ctx context.Context, id string) (*store.Tunnel, error) {
	row := db.reader.QueryRowContext(ctx, `SELECT `+tunnelColumns+` FROM tunnels WHERE id = ?`, id)
	t, err := scanTunnel(row)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get tunnel %q", id), err)
	}
	return t, nil
}

// FindTunnel implements store.Store.
//
// One query fetches every candidate: the tunnel with ID ref, the one named
// ref, and, for each dot in ref, the one named what precedes it (its Domain
// must then equal what follows). Go then applies the precedence. All three
// lookups use an index.
func (db *DB) FindTunnel(ctx context.Context, ref string) (*store.Tunnel, error) {
	op := fmt.Sprintf("find tunnel %q", ref)
	if ref == "" {
		return nil, notFound(op)
	}
	var prefixes []any
	for i := range len(ref) {
		if ref[i] == '.' && i > 0 && i < len(ref)-1 {
			prefixes = append(prefixes, ref[:i])
		}
	}
	query := `SELECT ` + tunnelColumns + ` FROM tunnels WHERE id = ? OR name = ?`
	if len(prefixes) > 0 {
		query += ` OR name IN (?` + strings.Repeat(", ?", len(prefixes)-1) + `)`
	}
	args := append([]any{ref, ref}, prefixes...)
	rows, err := db.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var byID, byName, byNameDomain *store.Tunnel
	for rows.Next() {
		t, err := scanTunnel(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		switch {
		case t.ID == ref:
			byID = t
		case t.Name == ref:
			byName = t
		case t.Name != "" && t.Domain != "" && t.Name+"."+t.Domain == ref:
			// Names are unique, but "a.b"+"c" and "a"+"b.c" could both
			// match "a.b.c": take the longest name, deterministically.
			if byNameDomain == nil || len(t.Name) > len(byNameDomain.Name) {
				byNameDomain = t
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	for _, t := range []*store.Tunnel{byID, byName, byNameDomain} {
		if t != nil {
			return t, nil
		}
	}
	return nil, notFound(op)
}

// ListTunnels implements store.Store.
func (db *DB) ListTunnels(ctx context.Context) ([]*store.Tunnel, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+tunnelColumns+` FROM tunnels ORDER BY id`)
	if err != nil {
		return nil, wrap("list tunnels", err)
	}
	defer rows.Close()
	var ts []*store.Tunnel
	for rows.Next() {
		t, err := scanTunnel(rows)
		if err != nil {
			return nil, wrap("list tunnels", err)
		}
		ts = append(ts, t)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list tunnels", err)
	}
	return ts, nil
}

// UpdateTunnel implements store.Store.
func (db *DB) UpdateTunnel(ctx context.Context, t *store.Tunnel) error {
	if err := t.Validate(); err != nil {
		return err
	}
	return execOne(ctx, db.writer, fmt.Sprintf("update tunnel %q (name %q)", t.ID, t.Name),
		`UPDATE tunnels SET name = ?, domain = ?, description = ?, labels = ?, options = ?,
			access_control = ?, updated_us = ?, expiration_us = ?
		WHERE id = ?`,
		t.Name, t.Domain, t.Description, list(t.Labels), blob(t.Options),
		blob(t.AccessControl), micros(t.Updated), nullMicros(t.Expiration), t.ID)
}

// DeleteTunnel implements store.Store. Ports and endpoints go with it
// through ON DELETE CASCADE.
func (db *DB) DeleteTunnel(ctx context.Context, id string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete tunnel %q", id),
		`DELETE FROM tunnels WHERE id = ?`, id)
}
