package redact

import (
	"strings"
	"testing"
)

func TestRedactor(t *testing.T) {
	r := NewRedactor()
	r.Add("api_key", "abc+def/1")
	r.Add("short", "abc")
	r.Add("ignored", "")
	in := "key abc+def/1, escaped abc%2Bdef%2F1, part abc"
	out := r.Redact(in)
	if strings.Contains(out, "abc") {
		t.Fatalf("leak: %q", out)
	}
	if !strings.Contains(out, "key <redacted:api_key>, escaped <redacted:api_key>, part <redacted:short>") {
		t.Errorf("longest first / escaped forms: %q", out)
	}
	if got := string(r.RedactBytes([]byte("abc"))); got != "<redacted:short>" {
		t.Errorf("RedactBytes: %q", got)
	}
	var nilR *Redactor
	nilR.Add("x", "y")
	if nilR.Redact("x") != "x" {
		t.Error("nil redactor")
	}
}

func TestURLPassword(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://app:hunter2@db.example/warren": "postgres://app:<redacted>@db.example/warren",
		"turn://u:p%40ss@h:3478?transport=tcp":     "turn://u:<redacted>@h:3478?transport=tcp",
	} {
		if got, ok := URLPassword(in); !ok || got != want {
			t.Errorf("URLPassword(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"https://relay.example/x", "https://user@relay.example/", ":80", "not a url %zz", "host:pw@x"} {
		if got, ok := URLPassword(in); ok {
			t.Errorf("URLPassword(%q) changed it to %q", in, got)
		}
	}
}
