package pgtest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestSharedServer: two tests get two empty databases on one server, as
// an unprivileged user when the test runs as root, behind a password.
func TestSharedServer(t *testing.T) {
	ctx := t.Context()
	a, b := DSN(t), DSN(t)
	if a == b {
		t.Fatal("two DSN calls gave one database")
	}
	c, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var dbUser string
	if err := c.QueryRow(ctx, "SELECT current_user").Scan(&dbUser); err != nil || dbUser != User {
		t.Errorf("current_user = %q, %v", dbUser, err)
	}
	if _, err := c.Exec(ctx, "CREATE TABLE x (y int)"); err != nil {
		t.Fatal(err)
	}
	// The server never runs as root.
	st, err := os.Stat(fmt.Sprintf("/proc/%d", shared.s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if uid := st.Sys().(*syscall.Stat_t).Uid; uid == 0 {
		t.Errorf("postgres runs as uid 0")
	}
	wrong := strings.Replace(b, shared.s.Password(), "wrong", 1)
	if c, err := pgx.Connect(ctx, wrong); err == nil {
		c.Close(ctx)
		t.Error("connected with a wrong password")
	}
}

// TestPrivateServerRestart: a private server stops and starts again on its
// data, which survives.
func TestPrivateServerRestart(t *testing.T) {
	ctx := context.Background()
	s := New(t)
	_, dsn, err := s.CreateDB(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exec := func(sql string) error {
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, sql)
		return err
	}
	if err := exec("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("connected to a stopped server")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := exec("DO $$ BEGIN IF (SELECT v FROM kept) <> 7 THEN RAISE 'lost'; END IF; END $$"); err != nil {
		t.Fatal(err)
	}
}
