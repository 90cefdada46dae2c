package tunnelproto

import (
	"encoding/json"
	"testing"
)

func TestAnonymousAccess(t *testing.T) {
	for _, tc := range []struct {
		doc              string
		decided, allowed bool
	}{
		{``, false, false},
		{`{}`, false, false},
		{`not json`, false, false},
		{`{"entries":[{"type":"Anonymous","subjects":[],"scopes":["connect"]}]}`, true, true},
		{`{"entries":[{"type":"anonymous","scopes":["connect"]}]}`, true, true},
		{`{"entries":[{"type":"Anonymous","scopes":["manage"]}]}`, false, false},
		{`{"entries":[{"type":"Anonymous","isDeny":true,"scopes":["connect"]}]}`, true, false},
		{`{"entries":[{"type":"Anonymous","scopes":["connect"]},{"type":"Anonymous","isDeny":true,"scopes":["connect"]}]}`, true, false},
		{`{"entries":[{"type":"Users","subjects":["a"],"scopes":["connect"]}]}`, false, false},
	} {
		d, a := AnonymousAccess(json.RawMessage(tc.doc), ScopeConnect)
		if d != tc.decided || a != tc.allowed {
			t.Errorf("%s: decided %v allowed %v, want %v %v", tc.doc, d, a, tc.decided, tc.allowed)
		}
	}
	if d, a := AnonymousAccess(AnonymousConnectDocument(), ScopeConnect); !d || !a {
		t.Error("AnonymousConnectDocument does not allow anonymous connect")
	}
}

func FuzzAnonymousAccess(f *testing.F) {
	f.Add([]byte(`{"entries":[{"type":"Anonymous","scopes":["connect"]}]}`))
	f.Add([]byte(`{"entries":null}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		AnonymousAccess(doc, ScopeConnect)
		HeaderOptions(doc)
	})
}
