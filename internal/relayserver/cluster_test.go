package relayserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/cluster"
	"github.com/warrenhq/warren/internal/store/postgres"
	"github.com/warrenhq/warren/internal/store/postgres/pgtest"
)

// readyz returns /readyz's status code and body.
func readyz(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitReadyz(t *testing.T, url string, want int) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, body := readyz(t, url)
		if code == want {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz stayed %d (%s), want %d", code, body, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestReadyzFollowsPostgres: a relay on PostgreSQL is ready while the
// database answers, not ready while it is stopped (saying why, without the
// password), and ready again once it is back, with nobody stepping in. The
// cluster status shows the node with its lease.
func TestReadyzFollowsPostgres(t *testing.T) {
	pg := pgtest.New(t)
	_, dsn, err := pg.CreateDB(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	db, err := postgres.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	url, stop := serve(t, Config{AdminKey: "adm", Store: db, PublicURL: "http://relay.test",
		Node: "node-a", InternalURL: "http://127.0.0.1:9", Lease: time.Second})
	defer stop()
	waitReadyz(t, url, http.StatusOK)

	req, _ := http.NewRequest("GET", url+"/api/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var st cluster.Status
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("cluster status: %d %v", resp.StatusCode, err)
	}
	if st.Self != "node-a" || len(st.Nodes) != 1 || !st.Nodes[0].Alive || st.Nodes[0].InternalURL != "http://127.0.0.1:9" {
		t.Errorf("cluster status = %+v", st)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	body := waitReadyz(t, url, http.StatusServiceUnavailable)
	if strings.Contains(body, pg.Password()) {
		t.Errorf("/readyz shows the database password: %s", body)
	}
	// The process keeps serving what needs no store.
	if resp, err := http.Get(url + "/healthz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz while the database is down: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := pg.Restart(); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, url, http.StatusOK)
}

// TestSingleNodeDefaults: on SQLite with no cluster settings the relay is
// the one node "local", and says so.
func TestSingleNodeDefaults(t *testing.T) {
	cfg := storeConfig(t, "adm")
	url, stop := serve(t, cfg)
	defer stop()
	req, _ := http.NewRequest("GET", url+"/api/v1/cluster", nil)
	req.Header.Set("Authorization", "Bearer adm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st cluster.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Self != cluster.DefaultNodeID || len(st.Nodes) != 1 || st.Nodes[0].ID != cluster.DefaultNodeID || st.Lease != "15s" {
		t.Errorf("cluster status = %+v", st)
	}
	noKey, _ := http.Get(url + "/api/v1/cluster")
	if noKey.StatusCode != http.StatusUnauthorized {
		t.Errorf("cluster status without the admin key: %d", noKey.StatusCode)
	}
	noKey.Body.Close()
}
