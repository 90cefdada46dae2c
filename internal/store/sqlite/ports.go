package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/warrenhq/warren/internal/store"
)

const portColumns = `tunnel_id, number, name, description, protocol, ssh_user, labels,
	is_default, options, access_control, created_us, updated_us`

func scanPort(s scanner) (*store.Port, error) {
	var (
		p                  store.Port
		number             int64
		labels             string
		created, updated   int64
		options, accessCtl []byte
	)
	err := s.Scan(&p.TunnelID, &number, &p.Name, &p.Description, &p.Protocol, &p.SSHUser,
		&labels, &p.IsDefault, &options, &accessCtl, &created, &updated)
	if err != nil {
		return nil, err
	}
	p.Number = uint16(number) // the CHECK constraint keeps it in range
	if p.Labels, err = fromList(labels); err != nil {
		return nil, err
	}
	p.Options, p.AccessControl = fromBlob(options), fromBlob(accessCtl)
	p.Created, p.Updated = fromMicros(created), fromMicros(updated)
	return &p, nil
}

// CreatePort implements store.Store.
func (db *DB) CreatePort(ctx context.Context, p *store.Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	_, err := db.writer.ExecContext(ctx, `INSERT INTO ports (`+portColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.TunnelID, int64(p.Number), p.Name, p.Description, p.Protocol, p.SSHUser, list(p.Labels),
		p.IsDefault, blob(p.Options), blob(p.AccessControl), micros(p.Created), micros(p.Updated))
	if err != nil {
		return wrap(fmt.Sprintf("create port %d of tunnel %q", p.Number, p.TunnelID), err)
	}
	return nil
}

// UpdatePort implements store.Store.
func (db *DB) UpdatePort(ctx context.Context, p *store.Port) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return execOne(ctx, db.writer, fmt.Sprintf("update port %d of tunnel %q", p.Number, p.TunnelID),
		`UPDATE ports SET name = ?, description = ?, protocol = ?, ssh_user = ?, labels = ?,
			is_default = ?, options = ?, access_control = ?, updated_us = ?
		WHERE tunnel_id = ? AND number = ?`,
		p.Name, p.Description, p.Protocol, p.SSHUser, list(p.Labels),
		p.IsDefault, blob(p.Options), blob(p.AccessControl), micros(p.Updated),
		p.TunnelID, int64(p.Number))
}

// GetPort implements store.Store.
func (db *DB) GetPort(ctx context.Context, tunnelID string, number uint16) (*store.Port, error) {
	row := db.reader.QueryRowContext(ctx,
		`SELECT `+portColumns+` FROM ports WHERE tunnel_id = ? AND number = ?`, tunnelID, int64(number))
	p, err := scanPort(row)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get port %d of tunnel %q", number, tunnelID), err)
	}
	return p, nil
}

// ListPorts implements store.Store.
func (db *DB) ListPorts(ctx context.Context, tunnelID string) ([]*store.Port, error) {
	op := fmt.Sprintf("list ports of tunnel %q", tunnelID)
	var ps []*store.Port
	err := db.readTx(ctx, op, func(tx *sql.Tx) error {
		if err := tunnelExists(ctx, tx, tunnelID); err != nil {
			return wrap(op, err)
		}
		rows, err := tx.QueryContext(ctx,
			`SELECT `+portColumns+` FROM ports WHERE tunnel_id = ? ORDER BY number`, tunnelID)
		if err != nil {
			return wrap(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			p, err := scanPort(rows)
			if err != nil {
				return wrap(op, err)
			}
			ps = append(ps, p)
		}
		if err := rows.Err(); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ps, nil
}

// DeletePort implements store.Store.
func (db *DB) DeletePort(ctx context.Context, tunnelID string, number uint16) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete port %d of tunnel %q", number, tunnelID),
		`DELETE FROM ports WHERE tunnel_id = ? AND number = ?`, tunnelID, int64(number))
}

// tunnelExists returns sql.ErrNoRows if there is no tunnel id.
func tunnelExists(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	return tx.QueryRowContext(ctx, `SELECT 1 FROM tunnels WHERE id = ?`, id).Scan(&one)
}
