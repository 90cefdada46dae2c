package postgres

import (
	"errors"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// TestUnavailableAcrossRestart: with the server stopped, reads, writes and
// Check fail with store.ErrUnavailable (not ErrNotFound, which callers
// take for a missing record or a lost lease); once it is back the same
// pool serves again without being reopened.
func TestUnavailableAcrossRestart(t *testing.T) {
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	if err := db.CreateTunnel(ctx, &store.Tunnel{ID: "t", Created: now, Updated: now}); err != nil {
		t.Fatal(err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	for what, err := range map[string]error{
		"check":      db.Check(ctx),
		"get tunnel": func() error { _, err := db.GetTunnel(ctx, "t"); return err }(),
		"renew node": db.RenewNode(ctx, "n", "i", now, now.Add(time.Second)),
		"create":     db.CreateTunnel(ctx, &store.Tunnel{ID: "u", Created: now, Updated: now}),
		"list nodes": func() error { _, err := db.ListNodes(ctx); return err }(),
		"register": func() error {
			_, err := db.RegisterNode(ctx, &store.Node{ID: "n", Instance: "i", Started: now, Renewed: now, Expires: now.Add(time.Second)})
			return err
		}(),
	} {
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s with the server stopped: %v, want ErrUnavailable", what, err)
		}
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	// The pool's connections died with the server: the first use of each
	// may fail, unavailable; within a few tries it serves again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := db.GetTunnel(ctx, "t")
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("get tunnel after the restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := db.Check(ctx); err != nil {
		t.Fatal(err)
	}
}
