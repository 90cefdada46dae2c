package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// ErrSchemaTooNew: the database was migrated by a newer build than this
// one. Using it could lose data this build does not know about, so Open
// refuses; the error text names both versions.
var ErrSchemaTooNew = errors.New("store/sqlite: database schema is newer than this build")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one schema step; applying it takes the schema from
// version-1 to version.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in order.
func migrations() ([]migration, error) {
	return loadMigrations(migrationFiles, "migrations")
}

// loadMigrations reads dir/NNNN_name.sql from fsys and checks that the
// versions run 1, 2, 3, ... without gaps or duplicates, so a misnumbered
// file fails every test rather than silently skipping a step.
func loadMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: migrations: %w", err)
	}
	var list []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, _ := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if err != nil || v != len(list)+1 {
			return nil, fmt.Errorf("store/sqlite: migration %s: want version %d", e.Name(), len(list)+1)
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store/sqlite: migrations: %w", err)
		}
		list = append(list, migration{version: v, name: e.Name(), sql: string(b)})
	}
	if len(list) == 0 {
		return nil, errors.New("store/sqlite: no migrations")
	}
	return list, nil
}

// migrate brings the schema of db up to the last of list, in one
// transaction. The version is read inside that (IMMEDIATE) transaction, so
// two processes opening the same new file cannot both apply a step.
func migrate(ctx context.Context, db *sql.DB, name string, list []migration) (err error) {
	want := list[len(list)-1].version
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store/sqlite: open %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var have int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&have); err != nil {
		return fmt.Errorf("store/sqlite: open %s: read schema version: %w", name, err)
	}
	switch {
	case have > want:
		return fmt.Errorf("%w: %s has schema version %d, this build knows up to %d; run a newer warren",
			ErrSchemaTooNew, name, have, want)
	case have == want:
		return tx.Commit()
	}
	for _, m := range list[have:] {
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("store/sqlite: %s: migration %s: %w", name, m.name, err)
		}
	}
	// PRAGMA takes no bound parameters; want is an int we produced.
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(want)); err != nil {
		return fmt.Errorf("store/sqlite: %s: set schema version: %w", name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store/sqlite: %s: commit migrations: %w", name, err)
	}
	return nil
}
