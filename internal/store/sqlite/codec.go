package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/warrenhq/warren/internal/store"
)

// wrap turns a driver error into one that matches the store's sentinels
// where it means one, keeping the driver's error (and its text) wrapped too.
func wrap(op string, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("store/sqlite: %s: %w: %w", op, store.ErrExists, err)
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			// The only foreign keys point at tunnels.
			return fmt.Errorf("store/sqlite: %s: tunnel %w: %w", op, store.ErrNotFound, err)
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("store/sqlite: %s: %w", op, store.ErrNotFound)
	}
	return fmt.Errorf("store/sqlite: %s: %w", op, err)
}

func notFound(op string) error {
	return fmt.Errorf("store/sqlite: %s: %w", op, store.ErrNotFound)
}

// execOne runs a write that must touch exactly one row; none means the row
// does not exist.
func execOne(ctx context.Context, db *sql.DB, op, query string, args ...any) error {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return wrap(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap(op, err)
	}
	if n == 0 {
		return notFound(op)
	}
	return nil
}

// readTx runs fn in a read transaction, so multi-query reads see one
// snapshot.
func (db *DB) readTx(ctx context.Context, op string, fn func(*sql.Tx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(op, err)
	}
	defer tx.Rollback() // read-only: nothing to commit
	return fn(tx)
}

// scanner is what *sql.Row and *sql.Rows have in common.
type scanner interface {
	Scan(dest ...any) error
}

// Times are INTEGER microseconds since the epoch (store.TimePrecision).

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

// Lists are JSON arrays in TEXT; empty comes back as nil.

func list(ss []string) string {
	if len(ss) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(ss) // cannot fail for []string
	return string(b)
}

func fromList(s string) ([]string, error) {
	var ss []string
	if err := json.Unmarshal([]byte(s), &ss); err != nil {
		return nil, fmt.Errorf("corrupt list %q: %w", s, err)
	}
	if len(ss) == 0 {
		return nil, nil
	}
	return ss, nil
}

// blob binds b as a BLOB, or NULL when empty; the driver is given a plain
// []byte, not a named type such as json.RawMessage.
func blob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

// fromBlob normalises a scanned BLOB: empty comes back as nil.
func fromBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
