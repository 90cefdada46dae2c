package store

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestTime(t *testing.T) {
	in := time.Date(2026, 3, 1, 13, 0, 0, 123456789, time.FixedZone("CET", 3600))
	got := Time(in)
	want := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	if !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("Time(%v) = %v, want %v", in, got, want)
	}
	if !Time(time.Time{}).IsZero() {
		t.Error("Time(zero) is not zero")
	}
}

// TestClone: a clone shares no memory with the original, and every field a
// store round-trips is copied (reflect finds fields added later).
func TestClone(t *testing.T) {
	now := time.Now()
	tn := &Tunnel{ID: "t", Labels: []string{"a"}, Options: json.RawMessage(`{}`),
		AccessControl: json.RawMessage(`[]`), Expiration: &now}
	p := &Port{TunnelID: "t", Number: 1, Labels: []string{"a"}, Options: json.RawMessage(`{}`),
		AccessControl: json.RawMessage(`[]`)}
	e := &Endpoint{TunnelID: "t", ID: "e", HostPublicKeys: []string{"k"}}
	k := &APIKey{ID: "k", Hash: []byte("h"), Scopes: []string{"s"}, RevokedAt: &now}
	s := &SigningKey{ID: "s", Secret: []byte("x"), RetiredAt: &now}

	for _, pair := range [][2]any{
		{tn, tn.Clone()}, {p, p.Clone()}, {e, e.Clone()}, {k, k.Clone()}, {s, s.Clone()},
	} {
		orig, clone := reflect.ValueOf(pair[0]).Elem(), reflect.ValueOf(pair[1]).Elem()
		if !reflect.DeepEqual(orig.Interface(), clone.Interface()) {
			t.Errorf("%T: clone differs", pair[0])
		}
		for i := range orig.NumField() {
			of, cf := orig.Field(i), clone.Field(i)
			switch of.Kind() {
			case reflect.Slice, reflect.Pointer:
				if !of.IsNil() && of.Pointer() == cf.Pointer() {
					t.Errorf("%T.%s is shared with the clone", pair[0], orig.Type().Field(i).Name)
				}
			}
		}
	}
}

func TestValidate(t *testing.T) {
	for name, err := range map[string]error{
		"nil tunnel":        (*Tunnel)(nil).Validate(),
		"tunnel without id": (&Tunnel{}).Validate(),
		"bad options":       (&Tunnel{ID: "t", Options: json.RawMessage(`{`)}).Validate(),
		"NUL description":   (&Tunnel{ID: "t", Description: "a\x00"}).Validate(),
		"bad UTF-8 label":   (&Tunnel{ID: "t", Labels: []string{"\xc3"}}).Validate(),
		"port 0":            (&Port{TunnelID: "t"}).Validate(),
		"port without tun":  (&Port{Number: 1}).Validate(),
		"bad port acl":      (&Port{TunnelID: "t", Number: 1, AccessControl: json.RawMessage(`x`)}).Validate(),
		"endpoint no id":    (&Endpoint{TunnelID: "t"}).Validate(),
		"endpoint bad key":  (&Endpoint{TunnelID: "t", ID: "e", HostPublicKeys: []string{"\xff"}}).Validate(),
		"api key no hash":   (&APIKey{ID: "k"}).Validate(),
		"api key bad scope": (&APIKey{ID: "k", Hash: []byte("h"), Scopes: []string{"\x00"}}).Validate(),
		"signing no secret": (&SigningKey{ID: "s"}).Validate(),
		"signing no id":     (&SigningKey{Secret: []byte("x")}).Validate(),
	} {
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate() = %v, want ErrInvalid", name, err)
		}
	}
	for name, err := range map[string]error{
		"tunnel":   (&Tunnel{ID: "t", Options: json.RawMessage(` {"a":1} `), Labels: []string{""}}).Validate(),
		"port":     (&Port{TunnelID: "t", Number: 65535}).Validate(),
		"endpoint": (&Endpoint{TunnelID: "t", ID: "e"}).Validate(),
		"api key":  (&APIKey{ID: "k", Hash: []byte{0}}).Validate(),
		"signing":  (&SigningKey{ID: "s", Secret: []byte{0}}).Validate(),
	} {
		if err != nil {
			t.Errorf("valid %s: Validate() = %v", name, err)
		}
	}
}
