package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/warrenhq/warren/internal/store"
)

// AddBandwidthUsage implements store.Store: one upsert, atomic per row, so
// the adds of concurrent callers (and of every node) all count.
func (db *DB) AddBandwidthUsage(ctx context.Context, userID, month string, delta int64, at time.Time) (int64, error) {
	if err := store.ValidateBandwidth(userID, month, delta); err != nil {
		return 0, err
	}
	var total int64
	err := db.pool.QueryRow(ctx, `INSERT INTO bandwidth_usage (user_id, month, bytes, updated) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_id, month) DO UPDATE SET bytes = bandwidth_usage.bytes + excluded.bytes, updated = excluded.updated
		RETURNING bytes`, userID, month, delta, ts(at)).Scan(&total)
	if err != nil {
		return 0, wrap(fmt.Sprintf("add bandwidth usage of %q in %s", userID, month), err)
	}
	return total, nil
}

// GetBandwidthUsage implements store.Store.
func (db *DB) GetBandwidthUsage(ctx context.Context, userID, month string) (*store.BandwidthUsage, error) {
	rows, err := db.pool.Query(ctx, `SELECT user_id, month, bytes, updated FROM bandwidth_usage
		WHERE user_id = $1 AND month = $2`, userID, month)
	op := fmt.Sprintf("get bandwidth usage of %q in %s", userID, month)
	if err != nil {
		return nil, wrap(op, err)
	}
	list, err := collect(rows, scanUsage)
	if err != nil {
		return nil, wrap(op, err)
	}
	if len(list) == 0 {
		return nil, notFound(op)
	}
	return list[0], nil
}

func scanUsage(rows pgx.Rows) (*store.BandwidthUsage, error) {
	var u store.BandwidthUsage
	if err := rows.Scan(&u.UserID, &u.Month, &u.Bytes, &u.Updated); err != nil {
		return nil, err
	}
	u.Updated = fromTS(u.Updated)
	return &u, nil
}

// ListBandwidthUsage implements store.Store.
func (db *DB) ListBandwidthUsage(ctx context.Context, month string) ([]*store.BandwidthUsage, error) {
	rows, err := db.pool.Query(ctx, `SELECT user_id, month, bytes, updated FROM bandwidth_usage
		WHERE month = $1 ORDER BY user_id COLLATE "C"`, month)
	op := "list bandwidth usage in " + month
	if err != nil {
		return nil, wrap(op, err)
	}
	list, err := collect(rows, scanUsage)
	if err != nil {
		return nil, wrap(op, err)
	}
	return list, nil
}

// DeleteBandwidthUsageBefore implements store.Store.
func (db *DB) DeleteBandwidthUsageBefore(ctx context.Context, month string) (int, error) {
	if err := store.ValidMonth(month); err != nil {
		return 0, err
	}
	tag, err := db.pool.Exec(ctx, `DELETE FROM bandwidth_usage WHERE month COLLATE "C" < $1`, month)
	if err != nil {
		return 0, wrap("delete bandwidth usage before "+month, err)
	}
	return int(tag.RowsAffected()), nil
}
