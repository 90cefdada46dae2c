package wingagent

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func allowUsers(acc Access) []string {
	var out []string
	for _, e := range acc.Allow {
		out = append(out, e.User)
	}
	slices.Sort(out)
	return out
}

// TestAllowEditsSurviveRestart: allow.add and allow.remove made through
// requests are written to the state dir (0600, no temporary files left)
// and a new agent on that dir starts with them; a config reload keeps
// them on top of the new configured list.
func TestAllowEditsSurviveRestart(t *testing.T) {
	url := testRelay(t)
	dir := filepath.Join(t.TempDir(), "state")
	base := Access{Locked: true, Allow: []AllowEntry{{User: "bob"}}}
	a := startAgent(t, url, func(c *Config) { c.Access = base; c.StateDir = dir })

	alice := openTunnel(t, url, "alice")
	var res struct {
		Changed      bool `json:"changed"`
		AllowedCount int  `json:"allowed_count"`
	}
	mustRequest(t, alice, map[string]any{"type": "allow.add", "user": "carol"}, &res)
	if !res.Changed || res.AllowedCount != 2 {
		t.Fatalf("allow.add carol: %+v", res)
	}
	mustRequest(t, alice, map[string]any{"type": "allow.remove", "user": "bob"}, &res)
	if !res.Changed || res.AllowedCount != 1 {
		t.Fatalf("allow.remove bob: %+v", res)
	}
	mustRequest(t, alice, map[string]any{"type": "allow.remove", "user": "nobody"}, &res)
	if res.Changed {
		t.Fatalf("removing an absent user changed the list: %+v", res)
	}
	if got := allowUsers(a.Access()); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("live list %v, want [carol]", got)
	}
	st, err := os.Stat(filepath.Join(dir, AllowStateFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %04o, want 0600", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d entries, want only %s", len(entries), AllowStateFile)
	}

	// A new wing process on the same state dir.
	key, _ := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "k"))
	b, err := New(Config{RelayURL: url, Token: "wing:alice", WingID: "box2", Key: key, Access: base, StateDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := allowUsers(b.Access()); !slices.Equal(got, []string{"carol"}) {
		t.Fatalf("after restart: %v, want [carol]", got)
	}
	// SIGHUP with a new configured list: bob stays removed, carol stays.
	b.SetAccess(context.Background(), Access{Locked: true, Allow: []AllowEntry{{User: "bob"}, {User: "dave"}}})
	if got := allowUsers(b.Access()); !slices.Equal(got, []string{"carol", "dave"}) {
		t.Fatalf("after reload: %v, want [carol dave]", got)
	}
	// Re-adding a configured user drops the removal instead of duplicating.
	if changed, err := b.editAllow(true, "BOB"); err != nil || !changed {
		t.Fatalf("re-add bob: %v %v", changed, err)
	}
	if got := allowUsers(b.Access()); !slices.Equal(got, []string{"bob", "carol", "dave"}) {
		t.Fatalf("after re-add: %v", got)
	}
	if e, _ := loadAllowEdits(dir); len(e.Removed) != 0 || !slices.Equal(e.Added, []string{"carol"}) {
		t.Fatalf("state after re-add: %+v", e)
	}
}

// TestAllowStateErrors: a broken state file stops the wing with a message
// naming the file; an state dir that cannot be written refuses the edit and keeps the
// list as it was.
func TestAllowStateErrors(t *testing.T) {
	key, _ := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "k"))
	for _, bad := range []string{"{", `{"version":2}`, `{"version":1,"added":[""]}`, `{"version":1,"extra":1}`, `{"version":1}{}`} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, AllowStateFile), []byte(bad), 0o600)
		_, err := New(Config{RelayURL: "http://127.0.0.1:1", Token: "t", WingID: "w", Key: key, StateDir: dir}, nil)
		if err == nil || !strings.Contains(err.Error(), AllowStateFile) {
			t.Errorf("state %q: err %v, want one naming %s", bad, err, AllowStateFile)
		}
	}
	// A state dir under a regular file cannot be created, even by root.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	a, err := New(Config{RelayURL: "http://127.0.0.1:1", Token: "t", WingID: "w", Key: key, StateDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.cfg.StateDir = filepath.Join(file, "state")
	if _, err := a.editAllow(true, "carol"); err == nil {
		t.Fatal("edit in a read-only state dir succeeded")
	}
	if got := allowUsers(a.Access()); len(got) != 0 {
		t.Fatalf("unsaved edit applied: %v", got)
	}
}

func FuzzParseAllowEdits(f *testing.F) {
	f.Add([]byte(`{"version":1,"added":["carol"],"removed":["bob"]}`))
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"added":[" x"]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseAllowEdits(b)
		if err != nil {
			return
		}
		for _, u := range slices.Concat(e.Added, e.Removed) {
			if u == "" || u != strings.TrimSpace(u) {
				t.Fatalf("accepted user %q", u)
			}
		}
		applyAllowEdits(Access{Allow: []AllowEntry{{User: "bob"}}}, e)
	})
}
