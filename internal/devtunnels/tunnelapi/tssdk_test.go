package tunnelapi

import (
	"fmt"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/tssdk"
)

// TestTSSDKManagement runs the management calls a TS SDK host makes
// (testdata/tssdk/mgmt.js with the official TypeScript management client):
// the cluster recommendation, a create with tokens, and then, with only
// the host token, get, port create (and 409 on a repeat), port list,
// endpoint register and delete, port delete; the operator deletes the
// tunnel. The TS client refuses every call but create on a tunnel without
// a clusterId, so this is also the clusterId check.
func TestTSSDKManagement(t *testing.T) {
	e := newEnv(t)
	p := tssdk.Start(t, "mgmt.js",
		"WARREN_TS_SERVICE=http://"+e.srv.Listener.Addr().String()+"/",
		"WARREN_TS_AUTH=Bearer "+e.apiKey,
		"WARREN_TS_TUNNEL=tsmgmt")
	const wait = 60 * time.Second
	if ev := p.Wait("recommendations", wait); ev.Str("recommendedClusterId") != "127" {
		t.Errorf("recommendations %v", ev)
	}
	ev := p.Wait("created", wait)
	if ev.Str("clusterId") != "127" || fmt.Sprint(ev["selection"]) != "[recommended]" ||
		fmt.Sprint(ev["ports"]) != "[3000]" || fmt.Sprint(ev["tokenScopes"]) != "[connect host]" {
		t.Errorf("created %v", ev)
	}
	if ev := p.Wait("token", wait); ev.Str("tunnelId") != "tsmgmt" || fmt.Sprint(ev["scopes"]) != "[host]" || ev.Str("expires") == "" {
		t.Errorf("token as the SDK parses it: %v", ev)
	}
	if ev := p.Wait("got", wait); ev.Str("clusterId") != "127" || ev["renewed"] != true || fmt.Sprint(ev["ports"]) != "[3000]" {
		t.Errorf("get with the host token: %v", ev)
	}
	if ev := p.Wait("portCreated", wait); ev.Num("portNumber") != 3001 || ev.Str("clusterId") != "127" {
		t.Errorf("port created %v", ev)
	}
	if ev := p.Wait("portDuplicate", wait); ev.Num("status") != 409 {
		t.Errorf("repeated port create: %v", ev)
	}
	if ev := p.Wait("ports", wait); fmt.Sprint(ev["ports"]) != "[3000 3001]" {
		t.Errorf("ports %v", ev)
	}
	wsBase := "ws://" + e.srv.Listener.Addr().String()
	if ev := p.Wait("endpoint", wait); ev.Str("hostRelayUri") != wsBase+"/relay/host/tsmgmt" || ev.Str("clientRelayUri") != wsBase+"/relay/client/tsmgmt" {
		t.Errorf("endpoint %v", ev)
	}
	p.Wait("endpointDeleted", wait)
	if ev := p.Wait("portDeleted", wait); ev["deleted"] != true {
		t.Errorf("port delete %v", ev)
	}
	if ev := p.Wait("tunnelDeleted", wait); ev["deleted"] != true {
		t.Errorf("tunnel delete %v", ev)
	}
	if code, err := p.Exit(wait); err != nil || code != 0 {
		t.Fatalf("mgmt.js exit %d %v", code, err)
	}
}
