package tunnelapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

var tunnelSeeds = []string{
	``,
	`null`,
	`{}`,
	`[]`,
	`"x"`,
	`{"tunnelId":"t1","name":"t1","clusterId":""}`,
	`{"description":"new","tunnelId":"t1","clusterId":""}`,
	`{"name":null,"labels":null,"options":null,"accessControl":null}`,
	`{"name":"alpha","domain":"example.test","labels":["a","b=c"],"options":{"isGloballyAvailable":true},"accessControl":{"entries":[]}}`,
	`{"ports":[{"portNumber":80,"protocol":"http"},{"portNumber":22}]}`,
	`{"ports":[{"portNumber":80},{"portNumber":80}]}`,
	`{"name":5,"labels":[null],"options":[],"ports":{}}`,
	`{"description":"a\u0000b"}`,
	"{\"description\":\"\xff\xfe\"}",
	`{"name":"` + string(bytes.Repeat([]byte("a"), 64)) + `"}`,
	`{"endpoints":[{"hostEndpoints":null}],"status":{"portCount":1},"created":"2024-01-01T00:00:00Z"}`,
}

var portSeeds = []string{
	``,
	`{}`,
	`{"portNumber":8080,"protocol":"http","isDefault":true,"sshUser":"me","labels":["x"]}`,
	`{"portNumber":0}`,
	`{"portNumber":65536}`,
	`{"portNumber":-1}`,
	`{"portNumber":80.5}`,
	`{"portNumber":"80"}`,
	`{"portNumber":1e3}`,
	`{"protocol":"HTTP"}`,
	`{"options":{"a":[1,2]},"accessControl":{"entries":[{"type":"Anonymous","subjects":[],"scopes":["connect"]}]}}`,
	`{"name":null,"description":null,"labels":null,"protocol":null,"isDefault":null}`,
}

// checkDecodeError asserts the contract of a decoder failure: a 400
// ProblemDetails naming at least one field.
func checkDecodeError(t *testing.T, err error) {
	var ae *apiError
	if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || len(ae.fields) == 0 || ae.detail == "" {
		t.Fatalf("decode error %#v is not a 400 naming a field", err)
	}
}

func FuzzDecodeTunnel(f *testing.F) {
	for _, s := range tunnelSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeTunnel(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		// Whatever the decoder accepts, the store accepts.
		tun := &store.Tunnel{ID: "t1"}
		p.apply(tun)
		if err := tun.Validate(); err != nil {
			t.Fatalf("accepted %q but the store refuses it: %v", body, err)
		}
		if !validID(tun.Name) {
			t.Fatalf("accepted name %q", tun.Name)
		}
		if tun.Domain != "" && !domainRE.MatchString(tun.Domain) {
			t.Fatalf("accepted domain %q", tun.Domain)
		}
		for _, doc := range []json.RawMessage{tun.Options, tun.AccessControl} {
			if doc != nil && (doc[0] != '{' || !json.Valid(doc)) {
				t.Fatalf("accepted non-object %q", doc)
			}
		}
		seen := map[uint16]bool{}
		for _, pp := range p.ports {
			if pp.number == nil || *pp.number == 0 || seen[*pp.number] {
				t.Fatalf("accepted ports %q", body)
			}
			seen[*pp.number] = true
			port := &store.Port{TunnelID: "t1", Number: *pp.number}
			pp.apply(port)
			if err := port.Validate(); err != nil {
				t.Fatalf("accepted port the store refuses: %v", err)
			}
		}
	})
}

func FuzzDecodePort(f *testing.F) {
	for _, s := range portSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodePort(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		if p.number != nil && *p.number == 0 {
			t.Fatalf("accepted port number 0 from %q", body)
		}
		port := &store.Port{TunnelID: "t1", Number: 80}
		p.apply(port)
		if err := port.Validate(); err != nil {
			t.Fatalf("accepted %q but the store refuses it: %v", body, err)
		}
		if !protocolRE.MatchString(port.Protocol) {
			t.Fatalf("accepted protocol %q", port.Protocol)
		}
	})
}

func FuzzDecodeEndpoint(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"id":"h-relay","hostId":"h","connectionMode":"TunnelRelay","hostPublicKeys":["AAAA"],"hostEndpoints":null}`, `{"hostPublicKeys":["!"]}`, `{"connectionMode":"LocalNetwork"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := decodeEndpoint(body)
		if err != nil {
			checkDecodeError(t, err)
			return
		}
		se := &store.Endpoint{TunnelID: "t1", ID: "x-relay", HostID: e.hostID, ConnectionMode: e.connectionMode, HostPublicKeys: e.hostPublicKeys}
		if err := se.Validate(); err != nil {
			t.Fatalf("accepted %q but the store refuses it: %v", body, err)
		}
	})
}

// FuzzMergeTunnel checks the partial update: fields absent from the body
// keep their value, present ones take the body's, applying twice equals
// applying once, and the old value is never aliased.
func FuzzMergeTunnel(f *testing.F) {
	for _, b := range tunnelSeeds {
		f.Add([]byte(tunnelSeeds[8]), []byte(b))
		f.Add([]byte(b), []byte(`{"description":"x","labels":["z"]}`))
	}
	f.Fuzz(func(t *testing.T, baseBody, body []byte) {
		bp, err := decodeTunnel(baseBody)
		if err != nil {
			return
		}
		now := time.Unix(1700000000, 0).UTC()
		base := &store.Tunnel{ID: "t1", Created: now, Updated: now}
		bp.apply(base)
		p, err := decodeTunnel(body)
		if err != nil {
			return
		}
		keep := base.Clone()
		got := base.Clone()
		p.apply(got)
		if !reflect.DeepEqual(base, keep) {
			t.Fatal("apply changed the tunnel it was not given")
		}
		want := keep.Clone()
		if p.name != nil {
			want.Name = *p.name
			if want.Name == "" {
				want.Name = want.ID
			}
		}
		if p.domain != nil {
			want.Domain = *p.domain
		}
		if p.description != nil {
			want.Description = *p.description
		}
		if p.labels != nil {
			want.Labels = *p.labels
		}
		if p.options != nil {
			want.Options = *p.options
		}
		if p.accessControl != nil {
			want.AccessControl = *p.accessControl
		}
		if !sameStored(got, want) {
			t.Fatalf("merge of %q into %q:\n got %+v\nwant %+v", body, baseBody, got, want)
		}
		twice := got.Clone()
		p.apply(twice)
		if !reflect.DeepEqual(twice, got) {
			t.Fatalf("merge is not idempotent:\n once %+v\ntwice %+v", got, twice)
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("merged tunnel refused by the store: %v", err)
		}
		// The result does not share memory with the patch.
		if len(got.Labels) > 0 && p.labels != nil {
			got.Labels[0] = "mutated"
			if (*p.labels)[0] == "mutated" {
				t.Fatal("merged labels alias the patch")
			}
		}
	})
}

// sameStored compares tunnels treating nil and empty slices alike, as the
// store does.
func sameStored(a, b *store.Tunnel) bool {
	a, b = a.Clone(), b.Clone()
	for _, t := range []*store.Tunnel{a, b} {
		if len(t.Labels) == 0 {
			t.Labels = nil
		}
		if len(t.Options) == 0 {
			t.Options = nil
		}
		if len(t.AccessControl) == 0 {
			t.AccessControl = nil
		}
	}
	return reflect.DeepEqual(a, b)
}
