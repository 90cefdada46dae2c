package relayserver

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"github.com/warrenhq/warren/internal/wing/wingtoken"
)

func openStore(t *testing.T, path string) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func do(t *testing.T, method, url, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func TestAPIKeysForTickets(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	defer db.Close()
	url, _ := serve(t, Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"})
	mintBody := `{"workspace_id":"w","source_id":"a","dest_id":"b"}`

	code, k := do(t, "POST", url+"/api/v1/keys", "Bearer adm", `{"name":"ci","scopes":["tickets"]}`)
	if code != 201 || !strings.HasPrefix(k["key"].(string), "wrn_") {
		t.Fatalf("create key: %d %v", code, k)
	}
	ticketsKey := k["key"].(string)
	_, k2 := do(t, "POST", url+"/api/v1/keys", "Bearer adm", `{"name":"ops","scopes":["tunnels"]}`)
	tunnelsKey := k2["key"].(string)

	if code, _ := do(t, "POST", url+"/v1/tickets", "Bearer "+ticketsKey, mintBody); code != 201 {
		t.Errorf("mint with a tickets key: %d, want 201", code)
	}
	if code, m := do(t, "POST", url+"/v1/tickets", "Bearer "+tunnelsKey, mintBody); code != 403 {
		t.Errorf("mint with a key lacking the scope: %d %v, want 403", code, m)
	}
	if code, _ := do(t, "POST", url+"/v1/tickets", "Bearer "+ticketsKey+"x", mintBody); code != 401 {
		t.Errorf("mint with a tampered key: %d, want 401", code)
	}
	// Only the admin key manages keys.
	if code, _ := do(t, "GET", url+"/api/v1/keys", "Bearer "+ticketsKey, ""); code != 403 {
		t.Errorf("list keys with an API key: %d, want 403", code)
	}
	if code, _ := do(t, "GET", url+"/api/v1/keys", "", ""); code != 401 {
		t.Errorf("list keys without a key: %d, want 401", code)
	}
	code, list := do(t, "GET", url+"/api/v1/keys", "Bearer adm", "")
	if code != 200 || len(list["keys"].([]any)) != 2 || strings.Contains(mustJSON(list), "hash") || strings.Contains(mustJSON(list), ticketsKey) {
		t.Errorf("list keys: %d %v", code, list)
	}
	// Revoked keys stop working at once.
	if code, _ := do(t, "DELETE", url+"/api/v1/keys/"+k["id"].(string), "Bearer adm", ""); code != 200 {
		t.Errorf("revoke: %d", code)
	}
	if code, _ := do(t, "POST", url+"/v1/tickets", "Bearer "+ticketsKey, mintBody); code != 401 {
		t.Errorf("mint with a revoked key: %d, want 401", code)
	}
	if code, _ := do(t, "DELETE", url+"/api/v1/keys/nosuchkey", "Bearer adm", ""); code != 404 {
		t.Errorf("revoke unknown: %d, want 404", code)
	}
	if code, _ := do(t, "POST", url+"/api/v1/keys", "Bearer adm", `{"name":"x","scopes":["root"]}`); code != 400 {
		t.Errorf("create with a bad scope: %d, want 400", code)
	}
}

// TestSigningKeysSurviveRestartAndRotation: a token stays valid across a
// restart (keys are in the store) and across a rotation (the retired key
// still verifies).
func TestSigningKeysSurviveRestartAndRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "relay.db")
	db := openStore(t, path)
	s1, err := New(Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s1.tokens.Issue(token.Grant{TunnelID: "tun1", TunnelCreated: time.Now(), Scopes: []string{"connect"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s1.Close()
	db.Close()

	db = openStore(t, path)
	defer db.Close()
	url, _ := serve(t, Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"})
	s2, _ := New(Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"}, nil)
	defer s2.Close()
	if _, err := s2.tokens.Verify(tok); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	if code, m := do(t, "POST", url+"/api/v1/signing-keys/rotate", "Bearer adm", ""); code != 200 {
		t.Fatalf("rotate: %d %v", code, m)
	}
	s3, _ := New(Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"}, nil)
	defer s3.Close()
	if _, err := s3.tokens.Verify(tok); err != nil {
		t.Fatalf("token signed by the retired key: %v", err)
	}
	cur, _ := s3.tokens.Keys().Current()
	old, _ := s2.tokens.Keys().Current()
	if cur.ID == old.ID {
		t.Fatal("rotation did not change the current key")
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestRotationKeepsLongLivedWingTokens: wing tokens live up to a year, so
// a rotation a few days later must not prune the key that signed them; a
// rotation after their longest lifetime does.
func TestRotationKeepsLongLivedWingTokens(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	defer db.Close()
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := New(Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test", Now: clock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok, _, err := s.wingTok.Issue(wingtoken.Claims{Kind: wingtoken.KindWing, UserID: "alice", WingID: "box"}, wingtoken.MaxTTL)
	if err != nil {
		t.Fatal(err)
	}
	rotate := func() {
		t.Helper()
		if _, err := rotateSigningKey(context.Background(), db, s.tokens, now); err != nil {
			t.Fatal(err)
		}
	}
	first, _ := s.tokens.Keys().Current()
	rotate()
	now = now.Add(3 * 24 * time.Hour)
	rotate() // prunes what a day-long tunnel token would allow
	if _, err := s.wingTok.Verify(tok, wingtoken.KindWing); err != nil {
		t.Fatalf("wing token 3 days after a rotation: %v", err)
	}
	keys, _ := db.ListSigningKeys(context.Background())
	if len(keys) != 3 {
		t.Fatalf("%d signing keys stored, want 3 (two retired, one current)", len(keys))
	}
	now = now.Add(wingtoken.MaxTTL)
	rotate()
	keys, _ = db.ListSigningKeys(context.Background())
	for _, k := range keys {
		if k.ID == first.ID {
			t.Fatal("the key retired more than a year ago is still stored")
		}
	}
	if _, err := s.wingTok.Verify(tok, wingtoken.KindWing); err == nil {
		t.Fatal("a wing token verified after its key was pruned")
	}
}
