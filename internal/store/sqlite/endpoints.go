package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/warrenhq/warren/internal/store"
)

const endpointColumns = `tunnel_id, id, host_id, connection_mode, host_public_keys, node, updated_us`

func scanEndpoint(s scanner) (*store.Endpoint, error) {
	var (
		e       store.Endpoint
		keys    string
		updated int64
	)
	err := s.Scan(&e.TunnelID, &e.ID, &e.HostID, &e.ConnectionMode, &keys, &e.Node, &updated)
	if err != nil {
		return nil, err
	}
	if e.HostPublicKeys, err = fromList(keys); err != nil {
		return nil, err
	}
	e.Updated = fromMicros(updated)
	return &e, nil
}

// PutEndpoint implements store.Store.
func (db *DB) PutEndpoint(ctx context.Context, e *store.Endpoint) error {
	if err := e.Validate(); err != nil {
		return err
	}
	// An upsert in one statement: no read-then-write race, and the same
	// syntax works on PostgreSQL.
	_, err := db.writer.ExecContext(ctx, `INSERT INTO endpoints (`+endpointColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tunnel_id, id) DO UPDATE SET
			host_id = excluded.host_id, connection_mode = excluded.connection_mode,
			host_public_keys = excluded.host_public_keys, node = excluded.node,
			updated_us = excluded.updated_us`,
		e.TunnelID, e.ID, e.HostID, e.ConnectionMode, list(e.HostPublicKeys), e.Node, micros(e.Updated))
	if err != nil {
		return wrap(fmt.Sprintf("put endpoint %q of tunnel %q", e.ID, e.TunnelID), err)
	}
	return nil
}

// ListEndpoints implements store.Store.
func (db *DB) ListEndpoints(ctx context.Context, tunnelID string) ([]*store.Endpoint, error) {
	op := fmt.Sprintf("list endpoints of tunnel %q", tunnelID)
	var es []*store.Endpoint
	err := db.readTx(ctx, op, func(tx *sql.Tx) error {
		if err := tunnelExists(ctx, tx, tunnelID); err != nil {
			return wrap(op, err)
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT `+endpointColumns+` FROM endpoints WHERE tunnel_id = ? ORDER BY id`, tunnelID)
		if err != nil {
			return wrap(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			e, err := scanEndpoint(rows)
			if err != nil {
				return wrap(op, err)
			}
			es = append(es, e)
		}
		if err := rows.Err(); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return es, nil
}

// DeleteEndpoint implements store.Store.
func (db *DB) DeleteEndpoint(ctx context.Context, tunnelID, id string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete endpoint %q of tunnel %q", id, tunnelID),
		`DELETE FROM endpoints WHERE tunnel_id = ? AND id = ?`, tunnelID, id)
}

// DeleteEndpointsOfNode implements store.Store.
func (db *DB) DeleteEndpointsOfNode(ctx context.Context, node string) (int, error) {
	op := fmt.Sprintf("delete endpoints of node %q", node)
	res, err := db.writer.ExecContext(ctx, `DELETE FROM endpoints WHERE node = ?`, node)
	if err != nil {
		return 0, wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap(op, err)
	}
	return int(n), nil
}
