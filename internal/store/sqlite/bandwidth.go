package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// AddBandwidthUsage implements store.Store. The upsert runs on the single
// writer connection, so concurrent adds are serialised and all count.
func (db *DB) AddBandwidthUsage(ctx context.Context, userID, month string, delta int64, at time.Time) (int64, error) {
	if err := store.ValidateBandwidth(userID, month, delta); err != nil {
		return 0, err
	}
	var total int64
	err := db.writer.QueryRowContext(ctx, `INSERT INTO bandwidth_usage (user_id, month, bytes, updated_us)
		VALUES (?, ?, ?, ?) ON CONFLICT (user_id, month)
		DO UPDATE SET bytes = bytes + excluded.bytes, updated_us = excluded.updated_us
		RETURNING bytes`, userID, month, delta, micros(store.Time(at))).Scan(&total)
	if err != nil {
		return 0, wrap(fmt.Sprintf("add bandwidth usage of %q in %s", userID, month), err)
	}
	return total, nil
}

// GetBandwidthUsage implements store.Store.
func (db *DB) GetBandwidthUsage(ctx context.Context, userID, month string) (*store.BandwidthUsage, error) {
	return scanUsage(db.reader.QueryRowContext(ctx, `SELECT user_id, month, bytes, updated_us FROM bandwidth_usage
		WHERE user_id = ? AND month = ?`, userID, month), fmt.Sprintf("get bandwidth usage of %q in %s", userID, month))
}

func scanUsage(row scanner, op string) (*store.BandwidthUsage, error) {
	var (
		u  store.BandwidthUsage
		us int64
	)
	if err := row.Scan(&u.UserID, &u.Month, &u.Bytes, &us); err != nil {
		return nil, wrap(op, err)
	}
	u.Updated = fromMicros(us)
	return &u, nil
}

// ListBandwidthUsage implements store.Store.
func (db *DB) ListBandwidthUsage(ctx context.Context, month string) ([]*store.BandwidthUsage, error) {
	op := "list bandwidth usage in " + month
	rows, err := db.reader.QueryContext(ctx, `SELECT user_id, month, bytes, updated_us FROM bandwidth_usage
		WHERE month = ? ORDER BY user_id`, month)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []*store.BandwidthUsage
	for rows.Next() {
		u, err := scanUsage(rows, op)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(op, err)
	}
	return out, nil
}

// DeleteBandwidthUsageBefore implements store.Store.
func (db *DB) DeleteBandwidthUsageBefore(ctx context.Context, month string) (int, error) {
	if err := store.ValidMonth(month); err != nil {
		return 0, err
	}
	res, err := db.writer.ExecContext(ctx, `DELETE FROM bandwidth_usage WHERE month < ?`, month)
	if err != nil {
		return 0, wrap("delete bandwidth usage before "+month, err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}
