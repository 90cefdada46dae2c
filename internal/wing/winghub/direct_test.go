package winghub

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// TestICEServers: users (GET /api/app/ice) and wings (registered) get the
// STUN servers and TURN REST credentials, never the secret.
func TestICEServers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	_, url := testHub(t, Config{ICE: ICE{STUNURLs: []string{"stun:s:3478"}, TURNURLs: []string{"turn:t:3478?transport=udp"},
		TURNSecret: "sekret", TTL: 10 * time.Minute, Now: func() time.Time { return now }}})

	resp, err := http.Get(url + "/api/app/ice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %s", resp.Status)
	}
	req, _ := http.NewRequest("GET", url+"/api/app/ice", nil)
	req.Header.Set("Authorization", "Bearer user:alice")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var cfg wp.ICEConfig
	if err := json.Unmarshal(body, &cfg); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %s", resp.Status, body)
	}
	if strings.Contains(string(body), "sekret") {
		t.Fatal("the TURN secret was handed out")
	}
	if len(cfg.ICEServers) != 2 || cfg.ICEServers[0].URLs[0] != "stun:s:3478" || cfg.TTL != 600 {
		t.Fatalf("ice: %s", body)
	}
	turn := cfg.ICEServers[1]
	wantUser := strconv.FormatInt(now.Add(10*time.Minute).Unix(), 10) + ":alice"
	mac := hmac.New(sha1.New, []byte("sekret"))
	mac.Write([]byte(wantUser))
	if turn.Username != wantUser || turn.Credential != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("TURN REST credentials: %+v, want username %s", turn, wantUser)
	}

	w := dial(t, url+"/ws/wing", "wing:alice")
	w.send(wp.Register{Type: wp.TypeWingRegister, WingID: "box", PublicKey: "pk-box"})
	m := w.read()
	servers, _ := json.Marshal(m["ice_servers"])
	if m["type"] != "registered" || !strings.Contains(string(servers), wantUser) || !strings.Contains(string(servers), "stun:s:3478") {
		t.Fatalf("registered: %v", m)
	}
}

// TestDirectMetrics: the relay counts a session as direct from the wing's
// pty.migrated to its pty.fallback.
func TestDirectMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	h, url := testHub(t, Config{Registerer: reg})
	w := registerWing(t, url, "alice", "box")
	b := dial(t, url+"/ws/pty", "user:alice")
	b.send(map[string]any{"type": "pty.start", "wing_id": "box", "public_key": "pk-user"})
	sid := w.read()["session_id"].(string)
	frame := func(typ string) { w.send(map[string]any{"type": typ, "session_id": sid, "data": "sealed"}) }
	frame(wp.TypePTYMigrated)
	if m := b.read(); m["type"] != wp.TypePTYMigrated || m["data"] != "sealed" {
		t.Fatalf("user got %v", m)
	}
	if got := testutil.ToFloat64(h.m.direct); got != 1 {
		t.Fatalf("direct sessions %v, want 1", got)
	}
	frame(wp.TypePTYMigrate) // the wing's answer reaches the user
	if m := b.read(); m["type"] != wp.TypePTYMigrate {
		t.Fatalf("user got %v", m)
	}
	b.send(map[string]any{"type": wp.TypePTYFallback, "session_id": sid, "data": "sealed"})
	if m := w.read(); m["type"] != wp.TypePTYFallback || m["user_id"] != "alice" {
		t.Fatalf("wing got %v", m)
	}
	frame(wp.TypePTYFallback)
	b.read()
	if testutil.ToFloat64(h.m.direct) != 0 || testutil.ToFloat64(h.m.migrated) != 1 || testutil.ToFloat64(h.m.fallbacks) != 1 {
		t.Fatalf("direct %v migrated %v fallbacks %v", testutil.ToFloat64(h.m.direct), testutil.ToFloat64(h.m.migrated), testutil.ToFloat64(h.m.fallbacks))
	}
}
