package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/warrenhq/warren/internal/store"
)

// MemoryPath is the Config.Path of a private in-memory database.
const MemoryPath = ":memory:"

// Defaults for the zero values of Config.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultMaxReaders  = 4
)

// Config says which database to open and how.
type Config struct {
	// Path of the database file, created if missing; or MemoryPath.
	Path string
	// BusyTimeout bounds how long a statement waits for a lock held by
	// another process before failing. Zero means DefaultBusyTimeout.
	BusyTimeout time.Duration
	// MaxReaders caps the read connections. Zero means DefaultMaxReaders.
	MaxReaders int
}

// DB is a [store.Store] kept in a SQLite database. It is safe for
// concurrent use.
type DB struct {
	path    string
	version int     // the schema version this build migrates to
	writer  *sql.DB // one connection: SQLite has one writer at a time
	reader  *sql.DB // query-only pool; == writer for MemoryPath
}

var _ store.Store = (*DB)(nil)

// Open opens or creates the database at path (or MemoryPath) with the
// default configuration and brings its schema up to date.
func Open(ctx context.Context, path string) (*DB, error) {
	return New(ctx, Config{Path: path})
}

// New opens or creates the database cfg describes and brings its schema up
// to date. It fails with ErrSchemaTooNew if the file was written by a newer
// build.
func New(ctx context.Context, cfg Config) (*DB, error) {
	return open(ctx, cfg, migrations)
}

// open is New with the migrations as a parameter, for tests.
func open(ctx context.Context, cfg Config, migs func() ([]migration, error)) (*DB, error) {
	if cfg.Path == "" {
		return nil, errors.New("store/sqlite: empty database path")
	}
	if cfg.BusyTimeout <= 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.MaxReaders <= 0 {
		cfg.MaxReaders = DefaultMaxReaders
	}
	list, err := migs()
	if err != nil {
		return nil, err
	}

	name := cfg.Path
	if cfg.Path != MemoryPath {
		if name, err = createFile(cfg.Path); err != nil {
			return nil, err
		}
	}
	busy := strconv.FormatInt(cfg.BusyTimeout.Milliseconds(), 10)
	common := url.Values{
		"_busy_timeout": {busy},
		"_foreign_keys": {"on"},
	}
	w := cloneValues(common)
	w.Set("_txlock", "immediate") // take the write lock at BEGIN, not at the first write
	if cfg.Path != MemoryPath {
		w.Set("_journal_mode", "WAL")
		w.Set("_synchronous", "FULL")
	}
	db := &DB{path: cfg.Path, version: list[len(list)-1].version}
	if db.writer, err = sql.Open("sqlite", name+"?"+w.Encode()); err != nil {
		return nil, fmt.Errorf("store/sqlite: open %s: %w", cfg.Path, err)
	}
	// database/sql would close and reopen connections behind our back; for
	// the writer that only costs, and for MemoryPath it loses the data.
	db.writer.SetMaxOpenConns(1)
	db.writer.SetMaxIdleConns(1)
	db.writer.SetConnMaxLifetime(0)
	db.writer.SetConnMaxIdleTime(0)

	if err := migrate(ctx, db.writer, cfg.Path, list); err != nil {
		db.writer.Close()
		return nil, err
	}

	if cfg.Path == MemoryPath {
		db.reader = db.writer
		return db, nil
	}
	r := cloneValues(common)
	r.Set("_query_only", "on")
	if db.reader, err = sql.Open("sqlite", name+"?"+r.Encode()); err != nil {
		db.writer.Close()
		return nil, fmt.Errorf("store/sqlite: open %s: %w", cfg.Path, err)
	}
	db.reader.SetMaxOpenConns(cfg.MaxReaders)
	db.reader.SetMaxIdleConns(cfg.MaxReaders)
	return db, nil
}

// createFile makes sure path exists with mode 0600 (its directory 0700 if
// it has to be made), before SQLite creates it with the umask's mode. It
// returns the file: URI to open, which copes with any character in path.
func createFile(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("store/sqlite: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", fmt.Errorf("store/sqlite: %w", err)
	}
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("store/sqlite: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("store/sqlite: %w", err)
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	if filepath.VolumeName(abs) != "" {
		u.Path = "/" + u.Path // file:///C:/... on Windows
	}
	// url.URL would write "file:///path"; SQLite accepts "file:/path" as
	// well, and the driver recognises URIs by their "file:" prefix.
	return "file:" + u.EscapedPath(), nil
}

func cloneValues(v url.Values) url.Values {
	c := make(url.Values, len(v))
	for k, vs := range v {
		c[k] = append([]string(nil), vs...)
	}
	return c
}

// Close closes the database. Calls after Close fail.
func (db *DB) Close() error {
	var err error
	if db.reader != db.writer {
		err = db.reader.Close()
	}
	// The writer closes last: when the last connection goes, SQLite
	// checkpoints the WAL into the main file and removes it.
	return errors.Join(err, db.writer.Close())
}
