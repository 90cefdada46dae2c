package token

import "testing"

func TestParseAuthorization(t *testing.T) {
	tests := []struct {
		in         string
		scheme     string
		credential string
		ok         bool
	}{
		{"Tunnel abc.def.ghi", SchemeTunnel, "abc.def.ghi", true},
		{"tunnel abc.def.ghi", SchemeTunnel, "abc.def.ghi", true},
		{"TUNNEL abc.def.ghi", SchemeTunnel, "abc.def.ghi", true},
		{"tUnNeL x", SchemeTunnel, "x", true},
		{"Bearer wrn_id_secret", SchemeBearer, "wrn_id_secret", true},
		{"bearer wrn_id_secret", SchemeBearer, "wrn_id_secret", true},
		{"  Tunnel   abc  ", SchemeTunnel, "abc", true},
		{"Tunnel\tabc", SchemeTunnel, "abc", true},
		{"", "", "", false},
		{"   ", "", "", false},
		{"Tunnel", "", "", false},
		{"Tunnel ", "", "", false},
		{"Tunnel    ", "", "", false},
		{"Tunnelabc", "", "", false},
		{"Basic dXNlcjpwYXNz", "", "", false},
		{"Tunnels abc", "", "", false},
		{"abc.def.ghi", "", "", false},
		{"Tunnel a b", "", "", false},
		{"Tunnel Tunnel abc", "", "", false},
		{"Bearer", "", "", false},
	}
	for _, tc := range tests {
		s, c, ok := ParseAuthorization(tc.in)
		if s != tc.scheme || c != tc.credential || ok != tc.ok {
			t.Errorf("ParseAuthorization(%q) = %q, %q, %v; want %q, %q, %v", tc.in, s, c, ok, tc.scheme, tc.credential, tc.ok)
		}
	}
}
