package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/storetest"
)

func openFile(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, filepath.Join(t.TempDir(), "relay.db"))
	})
}

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return openFile(t, MemoryPath)
	})
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TestReopen: everything written survives Close and a new Open, as across
// a relay restart.
func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "relay.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	tn := &store.Tunnel{ID: "t1", Name: "web", Domain: "d", Labels: []string{"x"},
		Options: []byte(`{"a": 1}`), Created: t0, Updated: t0}
	p := &store.Port{TunnelID: "t1", Number: 443, Protocol: "https", Created: t0, Updated: t0}
	e := &store.Endpoint{TunnelID: "t1", ID: "h-relay", HostID: "h", Node: "n1", Updated: t0}
	k := &store.APIKey{ID: "k", Hash: []byte("hash"), Scopes: []string{"tunnels"}, Created: t0}
	sk := &store.SigningKey{ID: "s", Secret: []byte("secret"), Created: t0}
	for _, err := range []error{
		db.CreateTunnel(ctx, tn), db.CreatePort(ctx, p), db.PutEndpoint(ctx, e),
		db.CreateAPIKey(ctx, k), db.CreateSigningKey(ctx, sk),
		db.RetireSigningKey(ctx, "s", t0.Add(time.Hour)),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetTunnel(ctx, "t1"); err == nil {
		t.Error("GetTunnel after Close succeeded")
	}

	for round := range 2 { // the second reopen must not re-run migrations
		db = openFile(t, path)
		got, err := db.FindTunnel(ctx, "web.d")
		if err != nil || got.ID != "t1" || string(got.Options) != `{"a": 1}` || !got.Created.Equal(t0) {
			t.Errorf("round %d: tunnel = %+v, %v", round, got, err)
		}
		if gp, err := db.GetPort(ctx, "t1", 443); err != nil || gp.Protocol != "https" {
			t.Errorf("round %d: port = %+v, %v", round, gp, err)
		}
		if es, err := db.ListEndpoints(ctx, "t1"); err != nil || len(es) != 1 || es[0].Node != "n1" {
			t.Errorf("round %d: endpoints = %+v, %v", round, es, err)
		}
		if gk, err := db.GetAPIKey(ctx, "k"); err != nil || string(gk.Hash) != "hash" {
			t.Errorf("round %d: api key = %+v, %v", round, gk, err)
		}
		if sks, err := db.ListSigningKeys(ctx); err != nil || len(sks) != 1 || sks[0].RetiredAt == nil {
			t.Errorf("round %d: signing keys = %+v, %v", round, sks, err)
		}
		if v, list := userVersion(t, path), mustMigrations(t); v != len(list) {
			t.Errorf("round %d: user_version = %d, want %d", round, v, len(list))
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// userVersion reads PRAGMA user_version with a connection of its own.
func userVersion(t *testing.T, path string) int {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRowContext(t.Context(), "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func setUserVersion(t *testing.T, path string, v int) {
	t.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.ExecContext(t.Context(), fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		t.Fatal(err)
	}
}

func TestRefuseNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	openFile(t, path).Close()
	setUserVersion(t, path, 99)

	_, err := Open(t.Context(), path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open(newer schema) = %v, want ErrSchemaTooNew", err)
	}
	for _, s := range []string{"99", "1", path} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if v := userVersion(t, path); v != 99 {
		t.Errorf("refused open changed user_version to %d", v)
	}
}

// TestMigrations applies a schema in steps, as successive releases would,
// and checks that a failing step leaves the database as it was.
func TestMigrations(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")
	steps := fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER) STRICT; INSERT INTO a VALUES (1);")},
	}
	load := func() ([]migration, error) { return loadMigrations(steps, "m") }
	count := func(db *DB) int {
		var n int
		if err := db.reader.QueryRowContext(ctx, "SELECT count(*) FROM a").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	db, err := open(ctx, Config{Path: path}, load)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = open(ctx, Config{Path: path}, load) // again: nothing to do
	if err != nil {
		t.Fatal(err)
	}
	if n := count(db); n != 1 {
		t.Errorf("after reopen, migration 1 ran %d times", n)
	}
	db.Close()

	steps["m/0002_b.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO a VALUES (2); CREATE TABLE b (y TEXT) STRICT;")}
	steps["m/0003_bad.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO a VALUES (3); CREATE TABLE a (z);")}
	if _, err := open(ctx, Config{Path: path}, load); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Fatalf("open with a failing migration = %v, want an error naming 0003_bad.sql", err)
	}
	if v := userVersion(t, path); v != 1 {
		t.Errorf("failed migrations left user_version %d, want 1", v)
	}

	delete(steps, "m/0003_bad.sql")
	db, err = open(ctx, Config{Path: path}, load)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n := count(db); n != 2 {
		t.Errorf("after migration 2, a has %d rows, want 2 (the failed step rolled back)", n)
	}
	if v := userVersion(t, path); v != 2 {
		t.Errorf("user_version = %d, want 2", v)
	}
}

func TestLoadMigrationsRejectsGaps(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"gap":        {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"duplicate":  {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"unnumbered": {"m/init.sql": {}},
		"empty":      {"m/README": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
	list, err := migrations()
	if err != nil || len(list) == 0 {
		t.Fatalf("embedded migrations: %v, %v", list, err)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "relay") // does not exist yet
	path := filepath.Join(dir, "relay.db")
	db := openFile(t, path)
	// Write something so the WAL files exist.
	if err := db.CreateSigningKey(t.Context(), &store.SigningKey{ID: "s", Secret: []byte("x"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		dir:           0o700 | os.ModeDir,
		path:          0o600,
		path + "-wal": 0o600,
		path + "-shm": 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
	}
}

func TestPragmas(t *testing.T) {
	db := openFile(t, filepath.Join(t.TempDir(), "relay.db"))
	ctx := t.Context()
	for _, c := range []struct {
		db    *sql.DB
		query string
		want  string
	}{
		{db.writer, "PRAGMA journal_mode", "wal"},
		{db.writer, "PRAGMA foreign_keys", "1"},
		{db.writer, "PRAGMA synchronous", "2"},
		{db.writer, "PRAGMA busy_timeout", "5000"},
		{db.reader, "PRAGMA query_only", "1"},
		{db.reader, "PRAGMA busy_timeout", "5000"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, c.query).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("%s = %s, want %s", c.query, got, c.want)
		}
	}
}

// TestPathWithURIChars: the path is passed as a file: URI, so characters
// URIs give meaning to must be escaped.
func TestPathWithURIChars(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a?b#c %d&e=f")
	path := filepath.Join(dir, "relay.db")
	db, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateSigningKey(t.Context(), &store.SigningKey{ID: "s", Secret: []byte("x"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The data is in path itself: a fresh open finds it there.
	if ks, err := openFile(t, path).ListSigningKeys(t.Context()); err != nil || len(ks) != 1 {
		t.Errorf("after reopen: %v, %v", ks, err)
	}
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(dir) {
		t.Errorf("stray files next to %s: %v", dir, entries)
	}
}

func TestEmptyPath(t *testing.T) {
	if _, err := Open(t.Context(), ""); err == nil {
		t.Fatal("Open(\"\") succeeded")
	}
}

func mustMigrations(t *testing.T) []migration {
	t.Helper()
	list, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	return list
}
