package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/warrenhq/warren/internal/store"
)

// ErrSchemaTooNew: the database was migrated by a newer build than this
// one; Open refuses it rather than run code that does not know its schema.
var ErrSchemaTooNew = errors.New("store/postgres: database schema is newer than this build")

// DefaultConnectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout.
const DefaultConnectTimeout = 5 * time.Second

// Advisory lock keys (arbitrary, fixed): one for migrations, one that
// serialises reapers.
const (
	migrateLock = 0x77617272656e01 // "warren" 1
	reapLock    = 0x77617272656e02
)

// DB is a [store.Store] in a PostgreSQL database. It is safe for
// concurrent use, by many goroutines and many processes.
type DB struct {
	pool    *pgxpool.Pool
	name    string // "user@host:port/db" for errors, never the password
	version int
}

var _ store.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) { return loadMigrations(migrationFiles, "migrations") }

// loadMigrations reads dir/NNNN_name.sql and checks the versions run 1, 2,
// 3, ... without gaps or duplicates.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: migrations: %w", err)
	}
	var list []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != len(list)+1 {
			return nil, fmt.Errorf("store/postgres: migration %s: want version %d", e.Name(), len(list)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store/postgres: migrations: %w", err)
		}
		list = append(list, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(list) == 0 {
		return nil, errors.New("store/postgres: no migrations")
	}
	return list, nil
}

// Open connects to the database dsn names (a postgres:// URL or a
// keyword=value string, as libpq takes) and brings its schema up to date.
// It fails if the database cannot be reached.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return open(ctx, dsn, migrations)
}

func open(ctx context.Context, dsn string, migs func() ([]migration, error)) (*DB, error) {
	list, err := migs()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx leaves the password out of its parse errors.
		return nil, fmt.Errorf("store/postgres: dsn: %w", err)
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	// Connections that sat through a database restart are broken; check
	// idle ones before use rather than fail a request.
	cfg.HealthCheckPeriod = 10 * time.Second
	db := &DB{name: fmt.Sprintf("%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database), version: list[len(list)-1].version}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("store/postgres: %s: %w", db.name, err)
	}
	if err := db.migrate(ctx, list); err != nil {
		db.pool.Close()
		return nil, err
	}
	return db, nil
}

// migrate applies the pending migrations in one transaction, under an
// advisory lock so concurrent starters apply each step once.
func (db *DB) migrate(ctx context.Context, list []migration) error {
	want := list[len(list)-1].version
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return fmt.Errorf("store/postgres: %s: lock for migrations: %w", db.name, err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS warren_schema_version (
			one     boolean PRIMARY KEY DEFAULT true CHECK (one),
			version integer NOT NULL)`); err != nil {
			return fmt.Errorf("store/postgres: %s: create version table: %w", db.name, err)
		}
		var have int
		err := tx.QueryRow(ctx, `SELECT version FROM warren_schema_version`).Scan(&have)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("store/postgres: %s: read schema version: %w", db.name, err)
		}
		switch {
		case have > want:
			return fmt.Errorf("%w: %s has schema version %d, this build knows up to %d; run a newer warren",
				ErrSchemaTooNew, db.name, have, want)
		case have == want:
			return nil
		}
		for _, m := range list[have:] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("store/postgres: %s: migration %s: %w", db.name, m.name, err)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO warren_schema_version (version) VALUES ($1)
			ON CONFLICT (one) DO UPDATE SET version = excluded.version`, want); err != nil {
			return fmt.Errorf("store/postgres: %s: set schema version: %w", db.name, err)
		}
		return nil
	})
}

// Check implements store.Store.
func (db *DB) Check(ctx context.Context) error {
	var have int
	err := db.pool.QueryRow(ctx, `SELECT version FROM warren_schema_version`).Scan(&have)
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "42P01", errors.Is(err, pgx.ErrNoRows): // no table, or empty
		return fmt.Errorf("store/postgres: %s: %w: not migrated", db.name, store.ErrSchema)
	case err != nil && unavailable(err):
		return fmt.Errorf("store/postgres: %s: %w: %w", db.name, store.ErrUnavailable, err)
	case err != nil:
		return fmt.Errorf("store/postgres: %s: %w", db.name, err)
	case have != db.version:
		return fmt.Errorf("store/postgres: %s: %w: schema version %d, this build wants %d", db.name, store.ErrSchema, have, db.version)
	}
	return nil
}

// Close closes the pool. Calls after Close fail.
func (db *DB) Close() error {
	db.pool.Close()
	return nil
}

// wrap turns a driver error into one matching the store's sentinels where
// it means one, keeping the driver's error wrapped too.
func wrap(op string, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return fmt.Errorf("store/postgres: %s: %w: %w", op, store.ErrExists, err)
		case "23503": // foreign_key_violation: the only foreign keys point at tunnels
			return fmt.Errorf("store/postgres: %s: tunnel %w: %w", op, store.ErrNotFound, err)
		}
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
	}
	if unavailable(err) {
		return fmt.Errorf("store/postgres: %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("store/postgres: %s: %w", op, err)
}

// unavailable tells a database that cannot be reached, or that went away
// under a connection, from an error in the statement itself.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		// Class 08: connection exception; 57P01..03: the server is
		// shutting down, crashed, or still starting.
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || pgconn.SafeToRetry(err)
}

func notFound(op string) error {
	return fmt.Errorf("store/postgres: %s: %w", op, store.ErrNotFound)
}

// querier is what the pool and a transaction have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// execOne runs a write that must touch exactly one row.
func execOne(ctx context.Context, q querier, op, sql string, args ...any) error {
	tag, err := q.Exec(ctx, sql, args...)
	if err != nil {
		return wrap(op, err)
	}
	if tag.RowsAffected() == 0 {
		return notFound(op)
	}
	return nil
}

// tx runs fn in a transaction, committed if fn succeeds. fn's errors are
// returned as fn made them; failures to begin or commit are wrapped.
func (db *DB) tx(ctx context.Context, op string, opts pgx.TxOptions, fn func(pgx.Tx) error) error {
	var fnErr error
	err := pgx.BeginTxFunc(ctx, db.pool, opts, func(tx pgx.Tx) error { fnErr = fn(tx); return fnErr })
	if err != nil && fnErr == nil {
		return wrap(op, err)
	}
	return err
}

// snapshot is a read-only transaction that sees one snapshot.
var snapshot = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// collect scans every row with scan.
func collect[T any](rows pgx.Rows, scan func(pgx.Rows) (*T, error)) ([]*T, error) {
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Conversions. Times go in as store.Time and come back in UTC; lists go in
// never NULL and come back nil when empty; documents go in as plain []byte
// (NULL when empty) and come back nil when empty.

func ts(t time.Time) time.Time { return store.Time(t) }

func tsPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := store.Time(*t)
	return &v
}

func fromTS(t time.Time) time.Time { return t.UTC() }

func fromTSPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	v := t.UTC()
	return &v
}

func list(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func fromList(ss []string) []string {
	if len(ss) == 0 {
		return nil
	}
	return ss
}

func blob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}

func fromBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}
