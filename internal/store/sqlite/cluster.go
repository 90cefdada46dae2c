package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// writeTx runs fn in a write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits it if fn succeeds.
func (db *DB) writeTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// release deletes the owned records matching cond (a WHERE clause on the
// node column) from every owning table and counts them.
func release(ctx context.Context, tx *sql.Tx, cond string, args ...any) (store.Holdings, error) {
	var h store.Holdings
	for _, t := range []struct {
		table string
		n     *int
	}{{"endpoints", &h.Endpoints}, {"wing_registrations", &h.Wings}, {"ticket_claims", &h.Tickets}} {
		res, err := tx.ExecContext(ctx, `DELETE FROM `+t.table+` WHERE `+cond, args...)
		if err != nil {
			return h, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return h, err
		}
		*t.n = int(n)
	}
	return h, nil
}

// RegisterNode implements store.Store.
func (db *DB) RegisterNode(ctx context.Context, n *store.Node) (store.Holdings, error) {
	if err := n.Validate(); err != nil {
		return store.Holdings{}, err
	}
	op := fmt.Sprintf("register node %q", n.ID)
	var h store.Holdings
	err := db.writeTx(ctx, op, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO nodes
			(id, instance, internal_url, public_url, started_us, renewed_us, expires_us)
			VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET instance = excluded.instance,
				internal_url = excluded.internal_url, public_url = excluded.public_url,
				started_us = excluded.started_us, renewed_us = excluded.renewed_us,
				expires_us = excluded.expires_us`,
			n.ID, n.Instance, n.InternalURL, n.PublicURL,
			micros(n.Started), micros(n.Renewed), micros(n.Expires)); err != nil {
			return wrap(op, err)
		}
		var err error
		if h, err = release(ctx, tx, `node = ?`, n.ID); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return h, err
}

// RenewNode implements store.Store.
func (db *DB) RenewNode(ctx context.Context, id, instance string, renewed, expires time.Time) error {
	return execOne(ctx, db.writer, fmt.Sprintf("renew node %q (instance %q)", id, instance),
		`UPDATE nodes SET renewed_us = ?, expires_us = ? WHERE id = ? AND instance = ?`,
		micros(renewed), micros(expires), id, instance)
}

// DeregisterNode implements store.Store.
func (db *DB) DeregisterNode(ctx context.Context, id, instance string) (store.Holdings, error) {
	op := fmt.Sprintf("deregister node %q (instance %q)", id, instance)
	var h store.Holdings
	err := db.writeTx(ctx, op, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM nodes WHERE id = ? AND instance = ?`, id, instance)
		if err != nil {
			return wrap(op, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(op, err)
		} else if n == 0 {
			return notFound(op)
		}
		if h, err = release(ctx, tx, `node = ?`, id); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return h, err
}

// ListNodes implements store.Store.
func (db *DB) ListNodes(ctx context.Context) ([]*store.Node, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT id, instance, internal_url, public_url,
		started_us, renewed_us, expires_us FROM nodes ORDER BY id`)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	defer rows.Close()
	var ns []*store.Node
	for rows.Next() {
		var (
			n                         store.Node
			started, renewed, expires int64
		)
		if err := rows.Scan(&n.ID, &n.Instance, &n.InternalURL, &n.PublicURL, &started, &renewed, &expires); err != nil {
			return nil, wrap("list nodes", err)
		}
		n.Started, n.Renewed, n.Expires = fromMicros(started), fromMicros(renewed), fromMicros(expires)
		ns = append(ns, &n)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list nodes", err)
	}
	return ns, nil
}

// ReapNodes implements store.Store.
func (db *DB) ReapNodes(ctx context.Context, now time.Time) ([]string, store.Holdings, error) {
	const op = "reap nodes"
	var (
		ids []string
		h   store.Holdings
	)
	err := db.writeTx(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `DELETE FROM nodes WHERE expires_us <= ? RETURNING id`, micros(now))
		if err != nil {
			return wrap(op, err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return wrap(op, err)
			}
			ids = append(ids, id)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrap(op, err)
		}
		if h, err = release(ctx, tx, `node NOT IN (SELECT id FROM nodes)`); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, store.Holdings{}, err
	}
	sort.Strings(ids)
	return ids, h, nil
}

// NodeHoldings implements store.Store.
func (db *DB) NodeHoldings(ctx context.Context) (map[string]store.Holdings, error) {
	const op = "count node holdings"
	out := map[string]store.Holdings{}
	err := db.readTx(ctx, op, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT node, 0, count(*) FROM endpoints GROUP BY node
			UNION ALL SELECT node, 1, count(*) FROM wing_registrations GROUP BY node
			UNION ALL SELECT node, 2, count(*) FROM ticket_claims GROUP BY node`)
		if err != nil {
			return wrap(op, err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				node      string
				kind, cnt int
			)
			if err := rows.Scan(&node, &kind, &cnt); err != nil {
				return wrap(op, err)
			}
			h := out[node]
			switch kind {
			case 0:
				h.Endpoints = cnt
			case 1:
				h.Wings = cnt
			case 2:
				h.Tickets = cnt
			}
			out[node] = h
		}
		if err := rows.Err(); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutWingRegistration implements store.Store.
func (db *DB) PutWingRegistration(ctx context.Context, r *store.WingRegistration) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	op := fmt.Sprintf("put wing registration %q", r.WingID)
	var prev string
	err := db.writeTx(ctx, op, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT node FROM wing_registrations WHERE wing_id = ?`, r.WingID).Scan(&prev)
		if err != nil && err != sql.ErrNoRows {
			return wrap(op, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO wing_registrations (wing_id, node, updated_us)
			VALUES (?, ?, ?) ON CONFLICT (wing_id) DO UPDATE SET node = excluded.node,
			updated_us = excluded.updated_us`, r.WingID, r.Node, micros(r.Updated)); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return prev, err
}

// GetWingRegistration implements store.Store.
func (db *DB) GetWingRegistration(ctx context.Context, wingID string) (*store.WingRegistration, error) {
	var (
		r       store.WingRegistration
		updated int64
	)
	err := db.reader.QueryRowContext(ctx, `SELECT wing_id, node, updated_us FROM wing_registrations
		WHERE wing_id = ?`, wingID).Scan(&r.WingID, &r.Node, &updated)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get wing registration %q", wingID), err)
	}
	r.Updated = fromMicros(updated)
	return &r, nil
}

// DeleteWingRegistration implements store.Store.
func (db *DB) DeleteWingRegistration(ctx context.Context, wingID, node string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete wing registration %q of node %q", wingID, node),
		`DELETE FROM wing_registrations WHERE wing_id = ? AND node = ?`, wingID, node)
}

// ClaimTicket implements store.Store.
func (db *DB) ClaimTicket(ctx context.Context, c *store.TicketClaim) (*store.TicketClaim, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("claim ticket %q", c.TicketID)
	// As ClaimWing: the single writer orders concurrent claims.
	if _, err := db.writer.ExecContext(ctx, `INSERT INTO ticket_claims (ticket_id, node, created_us)
		VALUES (?, ?, ?) ON CONFLICT (ticket_id) DO NOTHING`, c.TicketID, c.Node, micros(c.Created)); err != nil {
		return nil, wrap(op, err)
	}
	return getTicketClaim(db.writer.QueryRowContext(ctx,
		`SELECT ticket_id, node, created_us FROM ticket_claims WHERE ticket_id = ?`, c.TicketID), op)
}

// GetTicketClaim implements store.Store.
func (db *DB) GetTicketClaim(ctx context.Context, ticketID string) (*store.TicketClaim, error) {
	return getTicketClaim(db.reader.QueryRowContext(ctx,
		`SELECT ticket_id, node, created_us FROM ticket_claims WHERE ticket_id = ?`, ticketID),
		fmt.Sprintf("get ticket claim %q", ticketID))
}

func getTicketClaim(row scanner, op string) (*store.TicketClaim, error) {
	var (
		c       store.TicketClaim
		created int64
	)
	if err := row.Scan(&c.TicketID, &c.Node, &created); err != nil {
		return nil, wrap(op, err)
	}
	c.Created = fromMicros(created)
	return &c, nil
}

// DeleteTicketClaim implements store.Store.
func (db *DB) DeleteTicketClaim(ctx context.Context, ticketID, node string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete ticket claim %q of node %q", ticketID, node),
		`DELETE FROM ticket_claims WHERE ticket_id = ? AND node = ?`, ticketID, node)
}

// Check implements store.Store: the file answers and its schema version is
// this build's.
func (db *DB) Check(ctx context.Context) error {
	var have int
	if err := db.reader.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return wrap("check", err)
	}
	if have != db.version {
		return fmt.Errorf("store/sqlite: %s: %w: schema version %d, this build wants %d", db.path, store.ErrSchema, have, db.version)
	}
	return nil
}
