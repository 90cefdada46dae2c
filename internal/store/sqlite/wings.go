package sqlite

import (
	"context"
	"fmt"

	"github.com/warrenhq/warren/internal/store"
)

// ClaimWing implements store.Store.
func (db *DB) ClaimWing(ctx context.Context, o *store.WingOwner) (*store.WingOwner, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	op := fmt.Sprintf("claim wing %q", o.WingID)
	// Insert-if-absent, then read back on the writer: the single writer
	// connection orders concurrent claims, so all of them read the winner.
	if _, err := db.writer.ExecContext(ctx, `INSERT INTO wing_owners (wing_id, user_id, created_us)
		VALUES (?, ?, ?) ON CONFLICT (wing_id) DO NOTHING`, o.WingID, o.UserID, micros(o.Created)); err != nil {
		return nil, wrap(op, err)
	}
	return getWingOwner(db.writer.QueryRowContext(ctx,
		`SELECT wing_id, user_id, created_us FROM wing_owners WHERE wing_id = ?`, o.WingID), op)
}

// GetWingOwner implements store.Store.
func (db *DB) GetWingOwner(ctx context.Context, wingID string) (*store.WingOwner, error) {
	return getWingOwner(db.reader.QueryRowContext(ctx,
		`SELECT wing_id, user_id, created_us FROM wing_owners WHERE wing_id = ?`, wingID),
		fmt.Sprintf("get wing owner %q", wingID))
}

func getWingOwner(row scanner, op string) (*store.WingOwner, error) {
	var (
		o       store.WingOwner
		created int64
	)
	if err := row.Scan(&o.WingID, &o.UserID, &created); err != nil {
		return nil, wrap(op, err)
	}
	o.Created = fromMicros(created)
	return &o, nil
}

// DeleteWingOwner implements store.Store.
func (db *DB) DeleteWingOwner(ctx context.Context, wingID string) error {
	return execOne(ctx, db.writer, fmt.Sprintf("delete wing owner %q", wingID),
		`DELETE FROM wing_owners WHERE wing_id = ?`, wingID)
}
