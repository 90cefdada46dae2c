package relayserver

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
)

func TestWingTokensThroughTheAPI(t *testing.T) {
	db := openStore(t, filepath.Join(t.TempDir(), "relay.db"))
	defer db.Close()
	url, _ := serve(t, Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test"})

	_, k := do(t, "POST", url+"/api/v1/keys", "Bearer adm", `{"name":"fleet","scopes":["wings"]}`)
	wingsKey := k["key"].(string)
	_, k = do(t, "POST", url+"/api/v1/keys", "Bearer adm", `{"name":"ops","scopes":["tunnels"]}`)
	tunnelsKey := k["key"].(string)

	code, m := do(t, "POST", url+"/api/v1/wings/tokens", "Bearer "+wingsKey, `{"kind":"user","user":"alice"}`)
	if code != 201 || strings.Count(m["token"].(string), ".") != 2 {
		t.Fatalf("mint with a wings key: %d %v", code, m)
	}
	userTok := m["token"].(string)
	if code, _ := do(t, "POST", url+"/api/v1/wings/tokens", "Bearer "+tunnelsKey, `{"kind":"user","user":"alice"}`); code != 403 {
		t.Errorf("mint with a key lacking the wings scope: %d, want 403", code)
	}
	if code, _ := do(t, "POST", url+"/api/v1/wings/tokens", "", `{"kind":"user","user":"alice"}`); code != 401 {
		t.Errorf("mint without a key: %d, want 401", code)
	}
	for _, bad := range []string{`{"kind":"admin","user":"a"}`, `{"kind":"user"}`, `{"kind":"user","user":"a","wing":"w"}`, `{"kind":"wing","user":"a","ttl_seconds":99999999999}`, `{"x":1}`} {
		if code, m := do(t, "POST", url+"/api/v1/wings/tokens", "Bearer adm", bad); code != 400 {
			t.Errorf("%s: %d %v, want 400", bad, code, m)
		}
	}
	// The user token opens /api/app/wings; the admin key does not.
	req, _ := http.NewRequest("GET", url+"/api/app/wings", nil)
	req.Header.Set("Authorization", "Bearer "+userTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("wings list with a user token: %d", resp.StatusCode)
	}
	if code, _ := do(t, "GET", url+"/api/app/wings", "Bearer adm", ""); code != 401 {
		t.Errorf("wings list with the admin key: %d, want 401", code)
	}
	// A user token does not open the wing socket.
	if code, _ := do(t, "GET", url+"/ws/wing?token="+userTok, "", ""); code != 401 {
		t.Errorf("/ws/wing with a user token: %d, want 401", code)
	}
}
