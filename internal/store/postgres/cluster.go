package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/warrenhq/warren/internal/store"
)

// release deletes the owned records matching cond (a WHERE clause on the
// node column) from every owning table and counts them.
func release(ctx context.Context, tx pgx.Tx, cond string, args ...any) (store.Holdings, error) {
	var h store.Holdings
	for _, t := range []struct {
		table string
		n     *int
	}{{"endpoints", &h.Endpoints}, {"wing_registrations", &h.Wings}, {"ticket_claims", &h.Tickets}} {
		tag, err := tx.Exec(ctx, `DELETE FROM `+t.table+` WHERE `+cond, args...)
		if err != nil {
			return h, err
		}
		*t.n = int(tag.RowsAffected())
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
	err := db.tx(ctx, op, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// The upsert locks the node's row first: a reaper (which locks
		// node rows before records) cannot interleave.
		if _, err := tx.Exec(ctx, `INSERT INTO nodes
			(id, instance, internal_url, public_url, started, renewed, expires)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (id) DO UPDATE SET instance = excluded.instance,
				internal_url = excluded.internal_url, public_url = excluded.public_url,
				started = excluded.started, renewed = excluded.renewed, expires = excluded.expires`,
			n.ID, n.Instance, n.InternalURL, n.PublicURL, ts(n.Started), ts(n.Renewed), ts(n.Expires)); err != nil {
			return wrap(op, err)
		}
		var err error
		if h, err = release(ctx, tx, `node = $1`, n.ID); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return h, err
}

// RenewNode implements store.Store.
func (db *DB) RenewNode(ctx context.Context, id, instance string, renewed, expires time.Time) error {
	return execOne(ctx, db.pool, fmt.Sprintf("renew node %q (instance %q)", id, instance),
		`UPDATE nodes SET renewed = $1, expires = $2 WHERE id = $3 AND instance = $4`,
		ts(renewed), ts(expires), id, instance)
}

// DeregisterNode implements store.Store.
func (db *DB) DeregisterNode(ctx context.Context, id, instance string) (store.Holdings, error) {
	op := fmt.Sprintf("deregister node %q (instance %q)", id, instance)
	var h store.Holdings
	err := db.tx(ctx, op, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := execOne(ctx, tx, op, `DELETE FROM nodes WHERE id = $1 AND instance = $2`, id, instance); err != nil {
			return err
		}
		var err error
		if h, err = release(ctx, tx, `node = $1`, id); err != nil {
			return wrap(op, err)
		}
		return nil
	})
	return h, err
}

func scanNode(rows pgx.Rows) (*store.Node, error) {
	var n store.Node
	if err := rows.Scan(&n.ID, &n.Instance, &n.InternalURL, &n.PublicURL, &n.Started, &n.Renewed, &n.Expires); err != nil {
		return nil, err
	}
	n.Started, n.Renewed, n.Expires = fromTS(n.Started), fromTS(n.Renewed), fromTS(n.Expires)
	return &n, nil
}

// ListNodes implements store.Store.
func (db *DB) ListNodes(ctx context.Context) ([]*store.Node, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, instance, internal_url, public_url, started, renewed, expires
		FROM nodes ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	ns, err := collect(rows, scanNode)
	if err != nil {
		return nil, wrap("list nodes", err)
	}
	return ns, nil
}

// ReapNodes implements store.Store. Reapers take an advisory lock for the
// transaction: one at a time, each sees what the previous one committed.
func (db *DB) ReapNodes(ctx context.Context, now time.Time) ([]string, store.Holdings, error) {
	const op = "reap nodes"
	var (
		ids []string
		h   store.Holdings
	)
	err := db.tx(ctx, op, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(reapLock)); err != nil {
			return wrap(op, err)
		}
		rows, err := tx.Query(ctx, `DELETE FROM nodes WHERE expires <= $1 RETURNING id`, ts(now))
		if err != nil {
			return wrap(op, err)
		}
		if ids, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
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
	if len(ids) == 0 {
		return nil, h, nil
	}
	sort.Strings(ids)
	return ids, h, nil
}

// NodeHoldings implements store.Store.
func (db *DB) NodeHoldings(ctx context.Context) (map[string]store.Holdings, error) {
	const op = "count node holdings"
	rows, err := db.pool.Query(ctx, `
		SELECT node, 0, count(*) FROM endpoints GROUP BY node
		UNION ALL SELECT node, 1, count(*) FROM wing_registrations GROUP BY node
		UNION ALL SELECT node, 2, count(*) FROM ticket_claims GROUP BY node`)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	out := map[string]store.Holdings{}
	for rows.Next() {
		var (
			node string
			kind int32
			cnt  int64
		)
		if err := rows.Scan(&node, &kind, &cnt); err != nil {
			return nil, wrap(op, err)
		}
		h := out[node]
		switch kind {
		case 0:
			h.Endpoints = int(cnt)
		case 1:
			h.Wings = int(cnt)
		case 2:
			h.Tickets = int(cnt)
		}
		out[node] = h
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// PutWingRegistration implements store.Store. The previous holder is read
// under a row lock; when there is no row yet, a racing insert makes ours
// do nothing and the move is retried against the row it created.
func (db *DB) PutWingRegistration(ctx context.Context, r *store.WingRegistration) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	op := fmt.Sprintf("put wing registration %q", r.WingID)
	for {
		var prev string
		raced := false
		err := db.tx(ctx, op, pgx.TxOptions{}, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `SELECT node FROM wing_registrations WHERE wing_id = $1 FOR UPDATE`, r.WingID).Scan(&prev)
			switch {
			case errors.Is(err, pgx.ErrNoRows):
				tag, err := tx.Exec(ctx, `INSERT INTO wing_registrations (wing_id, node, updated)
					VALUES ($1, $2, $3) ON CONFLICT (wing_id) DO NOTHING`, r.WingID, r.Node, ts(r.Updated))
				if err != nil {
					return wrap(op, err)
				}
				raced = tag.RowsAffected() == 0
				return nil
			case err != nil:
				return wrap(op, err)
			}
			_, err = tx.Exec(ctx, `UPDATE wing_registrations SET node = $1, updated = $2 WHERE wing_id = $3`,
				r.Node, ts(r.Updated), r.WingID)
			if err != nil {
				return wrap(op, err)
			}
			return nil
		})
		if err != nil || !raced {
			return prev, err
		}
	}
}

// GetWingRegistration implements store.Store.
func (db *DB) GetWingRegistration(ctx context.Context, wingID string) (*store.WingRegistration, error) {
	var r store.WingRegistration
	err := db.pool.QueryRow(ctx, `SELECT wing_id, node, updated FROM wing_registrations WHERE wing_id = $1`, wingID).
		Scan(&r.WingID, &r.Node, &r.Updated)
	if err != nil {
		return nil, wrap(fmt.Sprintf("get wing registration %q", wingID), err)
	}
	r.Updated = fromTS(r.Updated)
	return &r, nil
}

// DeleteWingRegistration implements store.Store.
func (db *DB) DeleteWingRegistration(ctx context.Context, wingID, node string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete wing registration %q of node %q", wingID, node),
		`DELETE FROM wing_registrations WHERE wing_id = $1 AND node = $2`, wingID, node)
}

// ClaimTicket implements store.Store, as ClaimWing.
func (db *DB) ClaimTicket(ctx context.Context, c *store.TicketClaim) (*store.TicketClaim, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return claim(ctx, db, fmt.Sprintf("claim ticket %q", c.TicketID),
		`INSERT INTO ticket_claims (ticket_id, node, created) VALUES ($1, $2, $3)
			ON CONFLICT (ticket_id) DO NOTHING RETURNING ticket_id, node, created`,
		[]any{c.TicketID, c.Node, ts(c.Created)}, scanTicketClaim,
		func(ctx context.Context) (*store.TicketClaim, error) { return db.GetTicketClaim(ctx, c.TicketID) })
}

func scanTicketClaim(row pgx.Row) (*store.TicketClaim, error) {
	var c store.TicketClaim
	if err := row.Scan(&c.TicketID, &c.Node, &c.Created); err != nil {
		return nil, err
	}
	c.Created = fromTS(c.Created)
	return &c, nil
}

// GetTicketClaim implements store.Store.
func (db *DB) GetTicketClaim(ctx context.Context, ticketID string) (*store.TicketClaim, error) {
	c, err := scanTicketClaim(db.pool.QueryRow(ctx, `SELECT ticket_id, node, created FROM ticket_claims WHERE ticket_id = $1`, ticketID))
	if err != nil {
		return nil, wrap(fmt.Sprintf("get ticket claim %q", ticketID), err)
	}
	return c, nil
}

// DeleteTicketClaim implements store.Store.
func (db *DB) DeleteTicketClaim(ctx context.Context, ticketID, node string) error {
	return execOne(ctx, db.pool, fmt.Sprintf("delete ticket claim %q of node %q", ticketID, node),
		`DELETE FROM ticket_claims WHERE ticket_id = $1 AND node = $2`, ticketID, node)
}
