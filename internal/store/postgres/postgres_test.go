package postgres

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
	"github.com/warrenhq/warren/internal/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openDSN(t *testing.T, dsn string) *DB {
	t.Helper()
	db, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openDSN(t, pgtest.DSN(t)) })
}

// TestConcurrentOpen: nodes starting together migrate once.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			db, err := Open(t.Context(), dsn)
			if err == nil {
				err = db.Check(t.Context())
				db.Close()
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func schemaVersion(t *testing.T, dsn string) int {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	var v int
	if err := c.QueryRow(t.Context(), `SELECT version FROM warren_schema_version`).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func exec(t *testing.T, dsn, sql string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(t.Context())
	if _, err := c.Exec(t.Context(), sql); err != nil {
		t.Fatal(err)
	}
}

// TestSchemaVersions: a newer database is refused by Open and reported by
// Check of a store already open; an older one is migrated.
func TestSchemaVersions(t *testing.T) {
	dsn := pgtest.DSN(t)
	db := openDSN(t, dsn)
	list, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if v := schemaVersion(t, dsn); v != len(list) {
		t.Fatalf("schema version %d, want %d", v, len(list))
	}
	exec(t, dsn, `UPDATE warren_schema_version SET version = 99`)
	if err := db.Check(t.Context()); !errors.Is(err, store.ErrSchema) {
		t.Errorf("Check(newer schema) = %v, want ErrSchema", err)
	}
	if _, err := Open(t.Context(), dsn); !errors.Is(err, ErrSchemaTooNew) || !strings.Contains(err.Error(), "99") {
		t.Errorf("Open(newer schema) = %v, want ErrSchemaTooNew naming 99", err)
	}

	// A database without the schema: Check says so.
	bare := pgtest.DSN(t)
	db2 := openDSN(t, bare)
	exec(t, bare, `DROP TABLE warren_schema_version`)
	if err := db2.Check(t.Context()); !errors.Is(err, store.ErrSchema) {
		t.Errorf("Check(no schema) = %v, want ErrSchema", err)
	}
}

// TestMigrations: steps apply in order, a failing one rolls back whole.
func TestMigrations(t *testing.T) {
	dsn := pgtest.DSN(t)
	steps := fstest.MapFS{"m/0001_a.sql": {Data: []byte("CREATE TABLE a (x int); INSERT INTO a VALUES (1);")}}
	load := func() ([]migration, error) { return loadMigrations(steps, "m") }
	db, err := open(t.Context(), dsn, load)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	steps["m/0002_b.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO a VALUES (2);")}
	steps["m/0003_bad.sql"] = &fstest.MapFile{Data: []byte("INSERT INTO a VALUES (3); CREATE TABLE a (z int);")}
	if _, err := open(t.Context(), dsn, load); err == nil || !strings.Contains(err.Error(), "0003_bad.sql") {
		t.Fatalf("failing migration: %v, want an error naming 0003_bad.sql", err)
	}
	if v := schemaVersion(t, dsn); v != 1 {
		t.Errorf("after a failed step, version %d, want 1", v)
	}
	delete(steps, "m/0003_bad.sql")
	db, err = open(t.Context(), dsn, load)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.pool.QueryRow(t.Context(), `SELECT count(*) FROM a`).Scan(&n); err != nil || n != 2 {
		t.Errorf("a has %d rows (%v), want 2", n, err)
	}
	for name, fsys := range map[string]fstest.MapFS{
		"gap": {"m/0001_a.sql": {}, "m/0003_c.sql": {}}, "unnumbered": {"m/init.sql": {}}, "empty": {"m/README": {}},
	} {
		if _, err := loadMigrations(fsys, "m"); err == nil {
			t.Errorf("%s: loadMigrations succeeded", name)
		}
	}
}

// TestPasswordNeverInErrors: failures to parse or connect name the
// database, never the password.
func TestPasswordNeverInErrors(t *testing.T) {
	const pw = "hunter2-secret"
	for _, dsn := range []string{
		"postgres://warren:" + pw + "@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"host=127.0.0.1 port=1 user=warren password=" + pw + " dbname=db sslmode=disable connect_timeout=2",
		"postgres://warren:" + pw + "@127.0.0.1:1/db?sslmode=bogus",
		"host=127.0.0.1 password=" + pw + " bogus",
	} {
		_, err := Open(t.Context(), dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}
