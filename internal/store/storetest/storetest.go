// Package storetest is the conformance suite of [store.Store]. Every backend
// runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := Open(t.Context(), filepath.Join(t.TempDir(), "relay.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite checks the contract written in package store, and nothing a
// particular backend adds: a backend that passes can replace another without
// its callers noticing.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// Run runs the suite. open is called once per subtest and must return an
// empty store, closed by a cleanup it registers on t.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(*testing.T, store.Store)
	}{
		{"TunnelRoundTrip", testTunnelRoundTrip},
		{"TunnelCreateConflicts", testTunnelCreateConflicts},
		{"TunnelInvalid", testTunnelInvalid},
		{"TunnelGetMissing", testTunnelGetMissing},
		{"FindTunnel", testFindTunnel},
		{"ListTunnels", testListTunnels},
		{"UpdateTunnel", testUpdateTunnel},
		{"DeleteTunnelCascades", testDeleteTunnelCascades},
		{"Ports", testPorts},
		{"PortErrors", testPortErrors},
		{"Endpoints", testEndpoints},
		{"DeleteEndpointsOfNode", testDeleteEndpointsOfNode},
		{"APIKeys", testAPIKeys},
		{"SigningKeys", testSigningKeys},
		{"WingOwners", testWingOwners},
		{"Bandwidth", testBandwidth},
		{"EmptyValues", testEmptyValues},
		{"Times", testTimes},
		{"NoAliasing", testNoAliasing},
		{"CancelledContext", testCancelledContext},
		{"Concurrency", testConcurrency},
		{"Nodes", testNodes},
		{"ReapNodes", testReapNodes},
		{"WingRegistrations", testWingRegistrations},
		{"TicketClaims", testTicketClaims},
		{"Check", testCheck},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// t0 has nanoseconds and a zone on purpose: stores return UTC truncated to
// store.TimePrecision.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))

func at(d time.Duration) time.Time { return t0.Add(d) }

func ptr[T any](v T) *T { return &v }

func tunnel(id, name string) *store.Tunnel {
	return &store.Tunnel{ID: id, Name: name, Created: t0, Updated: t0}
}

func port(tunnelID string, n uint16) *store.Port {
	return &store.Port{TunnelID: tunnelID, Number: n, Protocol: "auto", Created: t0, Updated: t0}
}

func endpoint(tunnelID, hostID, node string) *store.Endpoint {
	return &store.Endpoint{
		TunnelID: tunnelID, ID: hostID + "-relay", HostID: hostID,
		ConnectionMode: "TunnelRelay", Node: node, Updated: t0,
	}
}

// must fails the test at once if err is not nil.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantErr checks that err matches target (nil: no error).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	switch {
	case target == nil && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case target != nil && !errors.Is(err, target):
		t.Errorf("%s = %v, want %v", what, err, target)
	}
}

// sameTime checks that a stored time came back as store.Time(want).
func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if w := store.Time(want); !got.Equal(w) || got.Location() != time.UTC {
		t.Errorf("%s = %v, want %v (UTC, %v precision)", what, got, w, store.TimePrecision)
	}
}

func sameTimePtr(t *testing.T, what string, got, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s = %v, want %v", what, got, want)
	default:
		sameTime(t, what, *got, *want)
	}
}

// sameValue compares everything but times, which the caller has zeroed in
// both after checking them with sameTime.
func sameValue(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, dump(got), dump(want))
	}
}

func dump(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

// emptyNil is what the store returns for a slice it was given.
func emptyNil[S ~[]E, E any](s S) S {
	if len(s) == 0 {
		return nil
	}
	return s
}

func sameTunnel(t *testing.T, got, want *store.Tunnel) {
	t.Helper()
	if got == nil {
		t.Fatalf("tunnel %q: got nil", want.ID)
	}
	sameTime(t, "tunnel "+want.ID+" Created", got.Created, want.Created)
	sameTime(t, "tunnel "+want.ID+" Updated", got.Updated, want.Updated)
	sameTimePtr(t, "tunnel "+want.ID+" Expiration", got.Expiration, want.Expiration)
	g, w := got.Clone(), want.Clone()
	g.Created, g.Updated, g.Expiration = time.Time{}, time.Time{}, nil
	w.Created, w.Updated, w.Expiration = time.Time{}, time.Time{}, nil
	w.Labels, w.Options, w.AccessControl = emptyNil(w.Labels), emptyNil(w.Options), emptyNil(w.AccessControl)
	sameValue(t, "tunnel "+want.ID, g, w)
}

func samePort(t *testing.T, got, want *store.Port) {
	t.Helper()
	what := fmt.Sprintf("port %s/%d", want.TunnelID, want.Number)
	if got == nil {
		t.Fatalf("%s: got nil", what)
	}
	sameTime(t, what+" Created", got.Created, want.Created)
	sameTime(t, what+" Updated", got.Updated, want.Updated)
	g, w := got.Clone(), want.Clone()
	g.Created, g.Updated = time.Time{}, time.Time{}
	w.Created, w.Updated = time.Time{}, time.Time{}
	w.Labels, w.Options, w.AccessControl = emptyNil(w.Labels), emptyNil(w.Options), emptyNil(w.AccessControl)
	sameValue(t, what, g, w)
}

func sameEndpoint(t *testing.T, got, want *store.Endpoint) {
	t.Helper()
	what := fmt.Sprintf("endpoint %s/%s", want.TunnelID, want.ID)
	if got == nil {
		t.Fatalf("%s: got nil", what)
	}
	sameTime(t, what+" Updated", got.Updated, want.Updated)
	g, w := got.Clone(), want.Clone()
	g.Updated, w.Updated = time.Time{}, time.Time{}
	w.HostPublicKeys = emptyNil(w.HostPublicKeys)
	sameValue(t, what, g, w)
}

func sameAPIKey(t *testing.T, got, want *store.APIKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("api key %q: got nil", want.ID)
	}
	sameTime(t, "api key "+want.ID+" Created", got.Created, want.Created)
	sameTimePtr(t, "api key "+want.ID+" RevokedAt", got.RevokedAt, want.RevokedAt)
	g, w := got.Clone(), want.Clone()
	g.Created, g.RevokedAt = time.Time{}, nil
	w.Created, w.RevokedAt = time.Time{}, nil
	w.Scopes = emptyNil(w.Scopes)
	sameValue(t, "api key "+want.ID, g, w)
}

func sameSigningKey(t *testing.T, got, want *store.SigningKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("signing key %q: got nil", want.ID)
	}
	sameTime(t, "signing key "+want.ID+" Created", got.Created, want.Created)
	sameTimePtr(t, "signing key "+want.ID+" RetiredAt", got.RetiredAt, want.RetiredAt)
	g, w := got.Clone(), want.Clone()
	g.Created, g.RetiredAt = time.Time{}, nil
	w.Created, w.RetiredAt = time.Time{}, nil
	sameValue(t, "signing key "+want.ID, g, w)
}

func ids[T any](items []*T, id func(*T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func tunnelID(t *store.Tunnel) string         { return t.ID }
func portID(p *store.Port) string             { return fmt.Sprint(p.Number) }
func endpointID(e *store.Endpoint) string     { return e.ID }
func apiKeyID(k *store.APIKey) string         { return k.ID }
func signingKeyID(k *store.SigningKey) string { return k.ID }

func sameIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %q, want %q", what, got, want)
	}
}

func fullTunnel() *store.Tunnel {
	return &store.Tunnel{
		ID:            "tun1",
		Name:          "my-tunnel",
		Domain:        "usw2.example.test",
		Description:   "büro tunnel ✓",
		Labels:        []string{"b", "a", "a"},
		Options:       json.RawMessage(`{ "isGloballyAvailable" : true,"x":[1, 2] }`),
		AccessControl: json.RawMessage(`{"entries":[{"type":"Anonymous","subjects":[],"scopes":["connect"]}]}`),
		Created:       t0,
		Updated:       at(time.Minute),
		Expiration:    ptr(at(24 * time.Hour)),
	}
}

func testTunnelRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	want := fullTunnel()
	must(t, s.CreateTunnel(ctx, want))
	got, err := s.GetTunnel(ctx, want.ID)
	must(t, err)
	sameTunnel(t, got, want)
	// JSON documents come back byte for byte, whitespace and key order kept.
	if string(got.Options) != string(want.Options) {
		t.Errorf("Options = %s, want verbatim %s", got.Options, want.Options)
	}

	bare := tunnel("tun2", "")
	must(t, s.CreateTunnel(ctx, bare))
	got, err = s.GetTunnel(ctx, "tun2")
	must(t, err)
	sameTunnel(t, got, bare)
}

func testTunnelCreateConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("a", "alpha")))
	wantErr(t, "create with a taken id", s.CreateTunnel(ctx, tunnel("a", "other")), store.ErrExists)
	wantErr(t, "create with a taken name", s.CreateTunnel(ctx, tunnel("b", "alpha")), store.ErrExists)
	// Names are unique only when set.
	must(t, s.CreateTunnel(ctx, tunnel("c", "")))
	must(t, s.CreateTunnel(ctx, tunnel("d", "")))
	// A failed create leaves nothing behind.
	_, err := s.GetTunnel(ctx, "b")
	wantErr(t, "get tunnel whose create failed", err, store.ErrNotFound)
	got, err := s.GetTunnel(ctx, "a")
	must(t, err)
	sameTunnel(t, got, tunnel("a", "alpha"))
}

func testTunnelInvalid(t *testing.T, s store.Store) {
	ctx := t.Context()
	bad := map[string]*store.Tunnel{
		"nil":               nil,
		"empty id":          tunnel("", "x"),
		"malformed options": {ID: "t1", Options: json.RawMessage(`{"a":`)},
		"malformed acl":     {ID: "t2", AccessControl: json.RawMessage(`nope`)},
		"NUL in name":       tunnel("t3", "a\x00b"),
		"non-UTF-8 label":   {ID: "t4", Labels: []string{"\xff"}},
	}
	for what, tn := range bad {
		wantErr(t, "create tunnel with "+what, s.CreateTunnel(ctx, tn), store.ErrInvalid)
	}
	must(t, s.CreateTunnel(ctx, tunnel("ok", "ok")))
	upd := tunnel("ok", "ok")
	upd.Options = json.RawMessage(`{`)
	wantErr(t, "update tunnel with malformed options", s.UpdateTunnel(ctx, upd), store.ErrInvalid)
	ts, err := s.ListTunnels(ctx)
	must(t, err)
	sameIDs(t, "tunnels after invalid creates", ids(ts, tunnelID), []string{"ok"})
}

func testTunnelGetMissing(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("present", "present")))
	for _, id := range []string{"absent", "", "PRESENT", "present "} {
		_, err := s.GetTunnel(ctx, id)
		wantErr(t, fmt.Sprintf("GetTunnel(%q)", id), err, store.ErrNotFound)
	}
	// GetTunnel is by ID only, never by name.
	must(t, s.CreateTunnel(ctx, tunnel("id2", "name2")))
	_, err := s.GetTunnel(ctx, "name2")
	wantErr(t, "GetTunnel(name)", err, store.ErrNotFound)
}

func testFindTunnel(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := tunnel("a1b2c3", "web")
	a.Domain = "usw2.rel.example"
	b := tunnel("web2", "a1b2c3") // b's name is a's id: the id wins
	c := tunnel("x.y", "")        // ids may contain dots
	c.Domain = "ignored"
	d := tunnel("dd", "api")
	d.Domain = "" // no domain: not reachable as "api."
	e := tunnel("e1", "a.b")
	e.Domain = "c"
	f := tunnel("f1", "a")
	f.Domain = "b.c"
	for _, tn := range []*store.Tunnel{a, b, c, d, e, f} {
		must(t, s.CreateTunnel(ctx, tn))
	}
	for ref, want := range map[string]string{
		"a1b2c3":               "a1b2c3", // by ID, although web2 is named a1b2c3
		"web":                  "a1b2c3", // by Name
		"web.usw2.rel.example": "a1b2c3", // by name.domain
		"web2":                 "web2",
		"x.y":                  "x.y",
		"api":                  "dd",
		"a.b.c":                "e1", // two name.domain matches: the longer Name wins
		"a.b":                  "e1", // a Name beats name.domain
	} {
		got, err := s.FindTunnel(ctx, ref)
		if err != nil {
			t.Errorf("FindTunnel(%q): %v", ref, err)
			continue
		}
		if got.ID != want {
			t.Errorf("FindTunnel(%q) = %q, want %q", ref, got.ID, want)
		}
	}
	for _, ref := range []string{"", "nope", "web.", ".usw2.rel.example", "api.", "web.usw2", "WEB", "web.other.example"} {
		_, err := s.FindTunnel(ctx, ref)
		wantErr(t, fmt.Sprintf("FindTunnel(%q)", ref), err, store.ErrNotFound)
	}
	got, err := s.FindTunnel(ctx, "web.usw2.rel.example")
	must(t, err)
	sameTunnel(t, got, a)
}

func testListTunnels(t *testing.T, s store.Store) {
	ctx := t.Context()
	ts, err := s.ListTunnels(ctx)
	must(t, err)
	if len(ts) != 0 {
		t.Errorf("empty store lists %d tunnels", len(ts))
	}
	for _, id := range []string{"m", "b", "z", "a"} {
		must(t, s.CreateTunnel(ctx, tunnel(id, "n-"+id)))
	}
	ts, err = s.ListTunnels(ctx)
	must(t, err)
	sameIDs(t, "ListTunnels", ids(ts, tunnelID), []string{"a", "b", "m", "z"})
	for _, tn := range ts {
		sameTunnel(t, tn, tunnel(tn.ID, "n-"+tn.ID))
	}
}

func testUpdateTunnel(t *testing.T, s store.Store) {
	ctx := t.Context()
	orig := fullTunnel()
	must(t, s.CreateTunnel(ctx, orig))
	must(t, s.CreateTunnel(ctx, tunnel("other", "taken")))

	upd := &store.Tunnel{
		ID:          orig.ID,
		Name:        "renamed",
		Domain:      "eu.example.test",
		Description: "new",
		Labels:      []string{"x"},
		Options:     json.RawMessage(`[]`),
		Created:     at(time.Hour), // ignored: Created is kept
		Updated:     at(2 * time.Hour),
	}
	must(t, s.UpdateTunnel(ctx, upd))
	got, err := s.GetTunnel(ctx, orig.ID)
	must(t, err)
	want := upd.Clone()
	want.Created = orig.Created
	sameTunnel(t, got, want) // Expiration and AccessControl cleared

	clash := want.Clone()
	clash.Name = "taken"
	wantErr(t, "update to a taken name", s.UpdateTunnel(ctx, clash), store.ErrExists)
	got, err = s.GetTunnel(ctx, orig.ID)
	must(t, err)
	sameTunnel(t, got, want)

	// Keeping one's own name, or dropping it, is no clash.
	must(t, s.UpdateTunnel(ctx, want))
	want.Name = ""
	must(t, s.UpdateTunnel(ctx, want))
	got, err = s.GetTunnel(ctx, orig.ID)
	must(t, err)
	sameTunnel(t, got, want)
	// The old name is free again.
	must(t, s.CreateTunnel(ctx, tunnel("third", "renamed")))

	wantErr(t, "update a missing tunnel", s.UpdateTunnel(ctx, tunnel("missing", "m")), store.ErrNotFound)
	_, err = s.GetTunnel(ctx, "missing")
	wantErr(t, "get tunnel after update of missing", err, store.ErrNotFound)
}

func testDeleteTunnelCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("gone", "gone")))
	must(t, s.CreateTunnel(ctx, tunnel("kept", "kept")))
	for _, id := range []string{"gone", "kept"} {
		must(t, s.CreatePort(ctx, port(id, 22)))
		must(t, s.CreatePort(ctx, port(id, 443)))
		must(t, s.PutEndpoint(ctx, endpoint(id, "h1", "node-a")))
	}
	must(t, s.DeleteTunnel(ctx, "gone"))

	_, err := s.GetTunnel(ctx, "gone")
	wantErr(t, "get deleted tunnel", err, store.ErrNotFound)
	_, err = s.FindTunnel(ctx, "gone")
	wantErr(t, "find deleted tunnel by name", err, store.ErrNotFound)
	_, err = s.GetPort(ctx, "gone", 22)
	wantErr(t, "get port of deleted tunnel", err, store.ErrNotFound)
	_, err = s.ListPorts(ctx, "gone")
	wantErr(t, "list ports of deleted tunnel", err, store.ErrNotFound)
	_, err = s.ListEndpoints(ctx, "gone")
	wantErr(t, "list endpoints of deleted tunnel", err, store.ErrNotFound)
	wantErr(t, "delete deleted tunnel", s.DeleteTunnel(ctx, "gone"), store.ErrNotFound)
	wantErr(t, "delete missing tunnel", s.DeleteTunnel(ctx, ""), store.ErrNotFound)

	// The rows are really gone, not merely hidden: a new tunnel under the
	// same id and name starts empty.
	must(t, s.CreateTunnel(ctx, tunnel("gone", "gone")))
	ps, err := s.ListPorts(ctx, "gone")
	must(t, err)
	es, err := s.ListEndpoints(ctx, "gone")
	must(t, err)
	if len(ps) != 0 || len(es) != 0 {
		t.Errorf("recreated tunnel has %d ports and %d endpoints, want none", len(ps), len(es))
	}
	// The other tunnel is untouched.
	ps, err = s.ListPorts(ctx, "kept")
	must(t, err)
	sameIDs(t, "ports of kept tunnel", ids(ps, portID), []string{"22", "443"})
	es, err = s.ListEndpoints(ctx, "kept")
	must(t, err)
	sameIDs(t, "endpoints of kept tunnel", ids(es, endpointID), []string{"h1-relay"})
}

func testPorts(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("t", "t")))
	must(t, s.CreateTunnel(ctx, tunnel("u", "u")))
	full := &store.Port{
		TunnelID:      "t",
		Number:        65535,
		Name:          "web",
		Description:   "the web port",
		Protocol:      "https",
		SSHUser:       "git",
		Labels:        []string{"l1", "l2"},
		IsDefault:     true,
		Options:       json.RawMessage(`{"k": "v"}`),
		AccessControl: json.RawMessage(`{"entries":[]}`),
		Created:       t0,
		Updated:       at(time.Second),
	}
	must(t, s.CreatePort(ctx, full))
	got, err := s.GetPort(ctx, "t", 65535)
	must(t, err)
	samePort(t, got, full)

	for _, n := range []uint16{8080, 1, 443} {
		must(t, s.CreatePort(ctx, port("t", n)))
	}
	must(t, s.CreatePort(ctx, port("u", 443))) // numbers are per tunnel
	ps, err := s.ListPorts(ctx, "t")
	must(t, err)
	sameIDs(t, "ListPorts(t)", ids(ps, portID), []string{"1", "443", "8080", "65535"})
	samePort(t, ps[1], port("t", 443))
	samePort(t, ps[3], full)

	upd := &store.Port{
		TunnelID: "t", Number: 65535, Name: "renamed", Protocol: "http",
		Created: at(time.Hour), // ignored: Created is kept
		Updated: at(time.Hour),
	}
	must(t, s.UpdatePort(ctx, upd))
	got, err = s.GetPort(ctx, "t", 65535)
	must(t, err)
	want := upd.Clone()
	want.Created = full.Created
	samePort(t, got, want)

	must(t, s.DeletePort(ctx, "t", 8080))
	_, err = s.GetPort(ctx, "t", 8080)
	wantErr(t, "get deleted port", err, store.ErrNotFound)
	ps, err = s.ListPorts(ctx, "t")
	must(t, err)
	sameIDs(t, "ListPorts(t) after delete", ids(ps, portID), []string{"1", "443", "65535"})
	ps, err = s.ListPorts(ctx, "u")
	must(t, err)
	sameIDs(t, "ListPorts(u)", ids(ps, portID), []string{"443"})
}

func testPortErrors(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("t", "t")))
	must(t, s.CreatePort(ctx, port("t", 22)))

	wantErr(t, "create duplicate port", s.CreatePort(ctx, port("t", 22)), store.ErrExists)
	wantErr(t, "create port on missing tunnel", s.CreatePort(ctx, port("missing", 22)), store.ErrNotFound)
	wantErr(t, "create port 0", s.CreatePort(ctx, port("t", 0)), store.ErrInvalid)
	wantErr(t, "create port without tunnel id", s.CreatePort(ctx, port("", 80)), store.ErrInvalid)
	wantErr(t, "create nil port", s.CreatePort(ctx, nil), store.ErrInvalid)
	bad := port("t", 80)
	bad.Options = json.RawMessage(`{]`)
	wantErr(t, "create port with malformed options", s.CreatePort(ctx, bad), store.ErrInvalid)

	wantErr(t, "update missing port", s.UpdatePort(ctx, port("t", 23)), store.ErrNotFound)
	wantErr(t, "update port of missing tunnel", s.UpdatePort(ctx, port("missing", 22)), store.ErrNotFound)
	wantErr(t, "update port 0", s.UpdatePort(ctx, port("t", 0)), store.ErrInvalid)

	_, err := s.GetPort(ctx, "t", 23)
	wantErr(t, "get missing port", err, store.ErrNotFound)
	_, err = s.GetPort(ctx, "missing", 22)
	wantErr(t, "get port of missing tunnel", err, store.ErrNotFound)
	_, err = s.ListPorts(ctx, "missing")
	wantErr(t, "list ports of missing tunnel", err, store.ErrNotFound)
	wantErr(t, "delete missing port", s.DeletePort(ctx, "t", 23), store.ErrNotFound)
	wantErr(t, "delete port of missing tunnel", s.DeletePort(ctx, "missing", 22), store.ErrNotFound)

	ps, err := s.ListPorts(ctx, "t")
	must(t, err)
	sameIDs(t, "ports after failed writes", ids(ps, portID), []string{"22"})
}

func testEndpoints(t *testing.T, s store.Store) {
	ctx := t.Context()
	must(t, s.CreateTunnel(ctx, tunnel("t", "t")))
	es, err := s.ListEndpoints(ctx, "t")
	must(t, err)
	if len(es) != 0 {
		t.Errorf("new tunnel lists %d endpoints", len(es))
	}

	e := endpoint("t", "hostB", "node-1")
	e.HostPublicKeys = []string{"ssh-ed25519 AAAA", "ssh-rsa BBBB"}
	must(t, s.PutEndpoint(ctx, e))
	must(t, s.PutEndpoint(ctx, endpoint("t", "hostA", "node-1")))
	es, err = s.ListEndpoints(ctx, "t")
	must(t, err)
	sameIDs(t, "ListEndpoints", ids(es, endpointID), []string{"hostA-relay", "hostB-relay"})
	sameEndpoint(t, es[1], e)

	// Put again replaces: the host reconnected through another node.
	e2 := e.Clone()
	e2.Node, e2.HostPublicKeys, e2.Updated = "node-2", []string{"ssh-ed25519 CCCC"}, at(time.Minute)
	must(t, s.PutEndpoint(ctx, e2))
	es, err = s.ListEndpoints(ctx, "t")
	must(t, err)
	sameIDs(t, "ListEndpoints after re-put", ids(es, endpointID), []string{"hostA-relay", "hostB-relay"})
	sameEndpoint(t, es[1], e2)

	wantErr(t, "put endpoint on missing tunnel", s.PutEndpoint(ctx, endpoint("missing", "h", "n")), store.ErrNotFound)
	wantErr(t, "put endpoint without id", s.PutEndpoint(ctx, &store.Endpoint{TunnelID: "t"}), store.ErrInvalid)
	wantErr(t, "put nil endpoint", s.PutEndpoint(ctx, nil), store.ErrInvalid)
	_, err = s.ListEndpoints(ctx, "missing")
	wantErr(t, "list endpoints of missing tunnel", err, store.ErrNotFound)

	must(t, s.DeleteEndpoint(ctx, "t", "hostA-relay"))
	wantErr(t, "delete deleted endpoint", s.DeleteEndpoint(ctx, "t", "hostA-relay"), store.ErrNotFound)
	wantErr(t, "delete endpoint of missing tunnel", s.DeleteEndpoint(ctx, "missing", "hostB-relay"), store.ErrNotFound)
	es, err = s.ListEndpoints(ctx, "t")
	must(t, err)
	sameIDs(t, "ListEndpoints after delete", ids(es, endpointID), []string{"hostB-relay"})
}

func testDeleteEndpointsOfNode(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, id := range []string{"t1", "t2"} {
		must(t, s.CreateTunnel(ctx, tunnel(id, id)))
		must(t, s.PutEndpoint(ctx, endpoint(id, "a", "node-old")))
		must(t, s.PutEndpoint(ctx, endpoint(id, "b", "node-new")))
	}
	must(t, s.PutEndpoint(ctx, endpoint("t1", "c", "node-old")))

	n, err := s.DeleteEndpointsOfNode(ctx, "node-old")
	must(t, err)
	if n != 3 {
		t.Errorf("DeleteEndpointsOfNode(node-old) = %d, want 3", n)
	}
	for _, id := range []string{"t1", "t2"} {
		es, err := s.ListEndpoints(ctx, id)
		must(t, err)
		sameIDs(t, "endpoints of "+id, ids(es, endpointID), []string{"b-relay"})
	}
	n, err = s.DeleteEndpointsOfNode(ctx, "node-old")
	must(t, err)
	if n != 0 {
		t.Errorf("second DeleteEndpointsOfNode(node-old) = %d, want 0", n)
	}
	n, err = s.DeleteEndpointsOfNode(ctx, "never-seen")
	must(t, err)
	if n != 0 {
		t.Errorf("DeleteEndpointsOfNode(never-seen) = %d, want 0", n)
	}
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	ks, err := s.ListAPIKeys(ctx)
	must(t, err)
	if len(ks) != 0 {
		t.Errorf("empty store lists %d api keys", len(ks))
	}
	k1 := &store.APIKey{ID: "k1", Name: "ci", Hash: []byte{0, 1, 2, 0xff}, Scopes: []string{"tunnels", "wings"}, Created: at(time.Hour)}
	k2 := &store.APIKey{ID: "k2", Name: "ops", Hash: []byte("h2"), Scopes: []string{"tickets"}, Created: t0}
	k0 := &store.APIKey{ID: "k0", Hash: []byte("h0"), Created: at(time.Hour)} // same Created as k1
	for _, k := range []*store.APIKey{k1, k2, k0} {
		must(t, s.CreateAPIKey(ctx, k))
	}
	got, err := s.GetAPIKey(ctx, "k1")
	must(t, err)
	sameAPIKey(t, got, k1)
	ks, err = s.ListAPIKeys(ctx)
	must(t, err)
	sameIDs(t, "ListAPIKeys (by Created, then ID)", ids(ks, apiKeyID), []string{"k2", "k0", "k1"})
	sameAPIKey(t, ks[0], k2)

	wantErr(t, "create duplicate api key", s.CreateAPIKey(ctx, &store.APIKey{ID: "k1", Hash: []byte("x")}), store.ErrExists)
	wantErr(t, "create api key without hash", s.CreateAPIKey(ctx, &store.APIKey{ID: "k9"}), store.ErrInvalid)
	wantErr(t, "create api key without id", s.CreateAPIKey(ctx, &store.APIKey{Hash: []byte("x")}), store.ErrInvalid)
	wantErr(t, "create nil api key", s.CreateAPIKey(ctx, nil), store.ErrInvalid)
	_, err = s.GetAPIKey(ctx, "k9")
	wantErr(t, "get missing api key", err, store.ErrNotFound)

	must(t, s.RevokeAPIKey(ctx, "k1", at(2*time.Hour)))
	must(t, s.RevokeAPIKey(ctx, "k1", at(3*time.Hour))) // keeps the first time
	got, err = s.GetAPIKey(ctx, "k1")
	must(t, err)
	want := k1.Clone()
	want.RevokedAt = ptr(at(2 * time.Hour))
	sameAPIKey(t, got, want)
	wantErr(t, "revoke missing api key", s.RevokeAPIKey(ctx, "k9", t0), store.ErrNotFound)
	got, err = s.GetAPIKey(ctx, "k2")
	must(t, err)
	sameAPIKey(t, got, k2) // others untouched

	// A key may be created revoked (an import of an existing keyring).
	k3 := &store.APIKey{ID: "k3", Hash: []byte("h3"), Created: t0, RevokedAt: ptr(at(time.Minute))}
	must(t, s.CreateAPIKey(ctx, k3))
	got, err = s.GetAPIKey(ctx, "k3")
	must(t, err)
	sameAPIKey(t, got, k3)
}

func testSigningKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	ks, err := s.ListSigningKeys(ctx)
	must(t, err)
	if len(ks) != 0 {
		t.Errorf("empty store lists %d signing keys", len(ks))
	}
	old := &store.SigningKey{ID: "old", Secret: []byte("s-old"), Created: t0}
	cur := &store.SigningKey{ID: "cur", Secret: []byte("s-cur\x00\xff"), Created: at(time.Hour)}
	twin := &store.SigningKey{ID: "twin", Secret: []byte("s-twin"), Created: at(time.Hour)}
	for _, k := range []*store.SigningKey{old, cur, twin} {
		must(t, s.CreateSigningKey(ctx, k))
	}
	ks, err = s.ListSigningKeys(ctx)
	must(t, err)
	sameIDs(t, "ListSigningKeys (newest first, then ID descending)", ids(ks, signingKeyID), []string{"twin", "cur", "old"})
	sameSigningKey(t, ks[1], cur)

	wantErr(t, "create duplicate signing key", s.CreateSigningKey(ctx, &store.SigningKey{ID: "old", Secret: []byte("x")}), store.ErrExists)
	wantErr(t, "create signing key without secret", s.CreateSigningKey(ctx, &store.SigningKey{ID: "new"}), store.ErrInvalid)
	wantErr(t, "create nil signing key", s.CreateSigningKey(ctx, nil), store.ErrInvalid)

	must(t, s.RetireSigningKey(ctx, "old", at(time.Hour)))
	must(t, s.RetireSigningKey(ctx, "old", at(2*time.Hour))) // keeps the first time
	wantErr(t, "retire missing signing key", s.RetireSigningKey(ctx, "nope", t0), store.ErrNotFound)
	ks, err = s.ListSigningKeys(ctx)
	must(t, err)
	want := old.Clone()
	want.RetiredAt = ptr(at(time.Hour))
	sameSigningKey(t, ks[2], want)
	sameSigningKey(t, ks[0], twin)

	must(t, s.DeleteSigningKey(ctx, "old"))
	wantErr(t, "delete deleted signing key", s.DeleteSigningKey(ctx, "old"), store.ErrNotFound)
	ks, err = s.ListSigningKeys(ctx)
	must(t, err)
	sameIDs(t, "ListSigningKeys after delete", ids(ks, signingKeyID), []string{"twin", "cur"})
}

// testEmptyValues: nil and empty slices and documents both come back nil.
func testEmptyValues(t *testing.T, s store.Store) {
	ctx := t.Context()
	tn := tunnel("t", "t")
	tn.Labels, tn.Options, tn.AccessControl = []string{}, json.RawMessage{}, nil
	must(t, s.CreateTunnel(ctx, tn))
	gt, err := s.GetTunnel(ctx, "t")
	must(t, err)
	if gt.Labels != nil || gt.Options != nil || gt.AccessControl != nil {
		t.Errorf("tunnel empty values = %#v, %#v, %#v, want nil", gt.Labels, gt.Options, gt.AccessControl)
	}
	p := port("t", 1)
	p.Labels, p.Options = []string{}, json.RawMessage{}
	must(t, s.CreatePort(ctx, p))
	gp, err := s.GetPort(ctx, "t", 1)
	must(t, err)
	if gp.Labels != nil || gp.Options != nil || gp.AccessControl != nil {
		t.Errorf("port empty values = %#v, %#v, %#v, want nil", gp.Labels, gp.Options, gp.AccessControl)
	}
	e := endpoint("t", "h", "n")
	e.HostPublicKeys = []string{}
	must(t, s.PutEndpoint(ctx, e))
	es, err := s.ListEndpoints(ctx, "t")
	must(t, err)
	if len(es) != 1 || es[0].HostPublicKeys != nil {
		t.Errorf("endpoint empty host keys = %+v, want one endpoint with nil keys", es)
	}
	must(t, s.CreateAPIKey(ctx, &store.APIKey{ID: "k", Hash: []byte("h"), Scopes: []string{}}))
	gk, err := s.GetAPIKey(ctx, "k")
	must(t, err)
	if gk.Scopes != nil {
		t.Errorf("api key empty scopes = %#v, want nil", gk.Scopes)
	}
	// Strings that are empty, and ones that are only blanks, are kept apart.
	tn2 := tunnel("t2", " ")
	tn2.Labels = []string{"", " "}
	must(t, s.CreateTunnel(ctx, tn2))
	gt, err = s.GetTunnel(ctx, "t2")
	must(t, err)
	sameTunnel(t, gt, tn2)
}

func testTimes(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Zero, pre-epoch, and far-future times survive, as UTC with
	// TimePrecision.
	for i, ts := range []time.Time{
		{},
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2999, 1, 2, 3, 4, 5, 6007, time.FixedZone("x", -7*3600)),
		t0,
	} {
		id := fmt.Sprintf("t%d", i)
		tn := tunnel(id, id)
		tn.Created, tn.Updated, tn.Expiration = ts, ts, ptr(ts)
		must(t, s.CreateTunnel(ctx, tn))
		got, err := s.GetTunnel(ctx, id)
		must(t, err)
		sameTunnel(t, got, tn)
	}
	// Precision holds: values differing by TimePrecision stay apart.
	a := store.Time(t0)
	b := a.Add(store.TimePrecision)
	must(t, s.CreateAPIKey(ctx, &store.APIKey{ID: "b", Hash: []byte("h"), Created: b}))
	must(t, s.CreateAPIKey(ctx, &store.APIKey{ID: "a", Hash: []byte("h"), Created: a}))
	ks, err := s.ListAPIKeys(ctx)
	must(t, err)
	sameIDs(t, "api keys ordered by Created", ids(ks, apiKeyID), []string{"a", "b"})
	if len(ks) == 2 && !ks[1].Created.Equal(b) {
		t.Errorf("Created = %v, want %v", ks[1].Created, b)
	}
}

// testNoAliasing: a store keeps no reference to values passed in or
// returned.
func testNoAliasing(t *testing.T, s store.Store) {
	ctx := t.Context()
	in := fullTunnel()
	want := in.Clone()
	must(t, s.CreateTunnel(ctx, in))
	in.Labels[0], in.Options[2], *in.Expiration, in.Name = "mutated", 'X', t0, "mutated"
	got, err := s.GetTunnel(ctx, want.ID)
	must(t, err)
	sameTunnel(t, got, want)
	got.Labels[0], got.Options[2], *got.Expiration = "mutated", 'X', t0
	got.AccessControl[0] = ' '
	again, err := s.FindTunnel(ctx, want.Name)
	must(t, err)
	sameTunnel(t, again, want)
	list, err := s.ListTunnels(ctx)
	must(t, err)
	list[0].Labels[1] = "mutated"
	again, err = s.GetTunnel(ctx, want.ID)
	must(t, err)
	sameTunnel(t, again, want)

	p := port(want.ID, 22)
	p.Labels, p.Options = []string{"a"}, json.RawMessage(`{"a":1}`)
	wantP := p.Clone()
	must(t, s.CreatePort(ctx, p))
	p.Labels[0], p.Options[1] = "mutated", 'X'
	gp, err := s.GetPort(ctx, want.ID, 22)
	must(t, err)
	samePort(t, gp, wantP)
	gp.Labels[0] = "mutated"
	ps, err := s.ListPorts(ctx, want.ID)
	must(t, err)
	samePort(t, ps[0], wantP)

	e := endpoint(want.ID, "h", "n")
	e.HostPublicKeys = []string{"k"}
	wantE := e.Clone()
	must(t, s.PutEndpoint(ctx, e))
	e.HostPublicKeys[0] = "mutated"
	es, err := s.ListEndpoints(ctx, want.ID)
	must(t, err)
	sameEndpoint(t, es[0], wantE)
	es[0].HostPublicKeys[0] = "mutated"
	es, err = s.ListEndpoints(ctx, want.ID)
	must(t, err)
	sameEndpoint(t, es[0], wantE)

	k := &store.APIKey{ID: "k", Hash: []byte("hash"), Scopes: []string{"tunnels"}, Created: t0}
	wantK := k.Clone()
	must(t, s.CreateAPIKey(ctx, k))
	k.Hash[0], k.Scopes[0] = 'X', "mutated"
	gk, err := s.GetAPIKey(ctx, "k")
	must(t, err)
	sameAPIKey(t, gk, wantK)
	gk.Hash[0], gk.Scopes[0] = 'X', "mutated"
	ks, err := s.ListAPIKeys(ctx)
	must(t, err)
	sameAPIKey(t, ks[0], wantK)

	sk := &store.SigningKey{ID: "s", Secret: []byte("secret"), Created: t0}
	wantS := sk.Clone()
	must(t, s.CreateSigningKey(ctx, sk))
	sk.Secret[0] = 'X'
	sks, err := s.ListSigningKeys(ctx)
	must(t, err)
	sameSigningKey(t, sks[0], wantS)
	sks[0].Secret[0] = 'X'
	sks, err = s.ListSigningKeys(ctx)
	must(t, err)
	sameSigningKey(t, sks[0], wantS)
}

func testCancelledContext(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.CreateTunnel(ctx, tunnel("t", "t")); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateTunnel(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.ListTunnels(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("ListTunnels(cancelled ctx) = %v, want context.Canceled", err)
	}
	if _, err := s.GetTunnel(t.Context(), "t"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("tunnel created with a cancelled context: GetTunnel = %v, want ErrNotFound", err)
	}
}

// testConcurrency hammers one store from many goroutines: every write must
// succeed or fail with a sentinel, never with a backend's lock error.
func testConcurrency(t *testing.T, s store.Store) {
	ctx := t.Context()
	const (
		workers = 16
		each    = 10
	)
	must(t, s.CreateTunnel(ctx, tunnel("shared", "shared")))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		errs     []error
		portWins = map[uint16]int{}
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("w%d-%d", w, i)
				if err := s.CreateTunnel(ctx, tunnel(id, id)); err != nil {
					fail(err)
				}
				// Distinct ports on the shared tunnel.
				if err := s.CreatePort(ctx, port("shared", uint16(1000+w*each+i))); err != nil {
					fail(err)
				}
				// The same ports from every worker: one wins each.
				switch err := s.CreatePort(ctx, port("shared", uint16(1+i))); {
				case err == nil:
					mu.Lock()
					portWins[uint16(1+i)]++
					mu.Unlock()
				case !errors.Is(err, store.ErrExists):
					fail(err)
				}
				if err := s.PutEndpoint(ctx, endpoint("shared", fmt.Sprintf("h%d", i), fmt.Sprintf("node%d", w))); err != nil {
					fail(err)
				}
				if _, err := s.ListPorts(ctx, "shared"); err != nil {
					fail(err)
				}
				if _, err := s.FindTunnel(ctx, id); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	ts, err := s.ListTunnels(ctx)
	must(t, err)
	if len(ts) != workers*each+1 {
		t.Errorf("%d tunnels, want %d", len(ts), workers*each+1)
	}
	ps, err := s.ListPorts(ctx, "shared")
	must(t, err)
	if len(ps) != workers*each+each {
		t.Errorf("%d ports, want %d", len(ps), workers*each+each)
	}
	for i := range each {
		if n := portWins[uint16(1+i)]; n != 1 {
			t.Errorf("port %d created %d times, want exactly once", 1+i, n)
		}
	}
	es, err := s.ListEndpoints(ctx, "shared")
	must(t, err)
	if len(es) != each {
		t.Errorf("%d endpoints, want %d (upserts by id)", len(es), each)
	}
}

// testWingOwners: the first claim of a wing id wins and later claims by
// anyone read it back unchanged; concurrent claims agree on one winner.
func testWingOwners(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetWingOwner(ctx, "box")
	wantErr(t, "GetWingOwner(unclaimed)", err, store.ErrNotFound)
	wantErr(t, "DeleteWingOwner(unclaimed)", s.DeleteWingOwner(ctx, "box"), store.ErrNotFound)
	for _, bad := range []*store.WingOwner{nil, {UserID: "alice"}, {WingID: "box"}, {WingID: "b\x00x", UserID: "alice"}} {
		_, err := s.ClaimWing(ctx, bad)
		wantErr(t, fmt.Sprintf("ClaimWing(%+v)", bad), err, store.ErrInvalid)
	}

	got, err := s.ClaimWing(ctx, &store.WingOwner{WingID: "box", UserID: "alice", Created: t0})
	must(t, err)
	if got.WingID != "box" || got.UserID != "alice" {
		t.Errorf("first claim = %+v, want alice's", got)
	}
	sameTime(t, "first claim Created", got.Created, t0)
	// Another user, and the owner again later: the first claim stands.
	for _, user := range []string{"mallory", "alice"} {
		got, err = s.ClaimWing(ctx, &store.WingOwner{WingID: "box", UserID: user, Created: at(time.Hour)})
		must(t, err)
		if got.UserID != "alice" {
			t.Errorf("claim by %s: owner = %q, want alice", user, got.UserID)
		}
		sameTime(t, "claim by "+user+": Created", got.Created, t0)
	}
	o, err := s.GetWingOwner(ctx, "box")
	must(t, err)
	if o.UserID != "alice" {
		t.Errorf("GetWingOwner = %+v, want alice", o)
	}
	// Released, the id goes to the next claimant.
	must(t, s.DeleteWingOwner(ctx, "box"))
	got, err = s.ClaimWing(ctx, &store.WingOwner{WingID: "box", UserID: "bob", Created: at(2 * time.Hour)})
	must(t, err)
	if got.UserID != "bob" {
		t.Errorf("claim after release = %+v, want bob", got)
	}

	// Racing claims of a fresh id: every claimant sees the same owner.
	const n = 16
	owners := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := s.ClaimWing(ctx, &store.WingOwner{WingID: "race", UserID: fmt.Sprintf("u%d", i), Created: t0})
			if err != nil {
				t.Error(err)
				return
			}
			owners[i] = o.UserID
		})
	}
	wg.Wait()
	for i, u := range owners {
		if u != owners[0] {
			t.Fatalf("claimant %d saw owner %q, claimant 0 saw %q", i, u, owners[0])
		}
	}
}
