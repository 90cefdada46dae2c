package overlay

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var key32 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

func TestParseKeyFile(t *testing.T) {
	keys, err := ParseKeyFile("# warren keys\n\nalice " + key32 + "  # laptop\n  bob\t" + key32 + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || len(keys["alice"]) != 32 || len(keys["bob"]) != 32 {
		t.Fatalf("keys %v", keys)
	}
	bad := map[string]string{
		"":                            "no keys in file",
		"# only a comment\n":          "no keys in file",
		"alice\n":                     "line 1: want",
		"alice " + key32 + " extra\n": "line 1: want",
		"a " + key32 + "\na " + key32: `line 2: identity "a" given twice`,
		"\nalice !!!notbase64\n":      `line 2 (identity "alice"): key is not std base64`,
		"alice " + base64.StdEncoding.EncodeToString([]byte("short")): "key is 5 bytes",
	}
	for in, want := range bad {
		_, err := ParseKeyFile(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", in, err, want)
		}
	}
}

func TestParseClientKey(t *testing.T) {
	id, k, err := ParseClientKey(key32 + "\n")
	if err != nil || id != "" || len(k) != 32 {
		t.Fatal(id, k, err)
	}
	id, _, err = ParseClientKey("laptop " + key32)
	if err != nil || id != "laptop" {
		t.Fatal(id, err)
	}
	if _, _, err := ParseClientKey("a b c"); err == nil {
		t.Fatal("three fields accepted")
	}
}

func TestStageError(t *testing.T) {
	inner := Errorf(StageDTLSHandshake, "handshake: %w", errors.New("boom"))
	outer := Wrap(StagePeerSetup, fmt.Errorf("worker 2: %w", inner))
	if StageOf(outer) != StageDTLSHandshake {
		t.Fatalf("stage %q", StageOf(outer))
	}
	var se *StageError
	if !errors.As(outer, &se) || se.Error() != "stage dtls_handshake failed: handshake: boom" || se.Msg() != "handshake: boom" {
		t.Fatalf("%v", se)
	}
	if Wrap(StageAccept, nil) != nil {
		t.Fatal("Wrap(nil) != nil")
	}
}

func FuzzParseKeyFile(f *testing.F) {
	for _, s := range []string{"a " + key32, "#x\n", "a b", "a " + key32 + "\nb " + key32 + " # c", "\x00 \xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		keys, err := ParseKeyFile(data)
		if err != nil {
			if len(keys) != 0 {
				t.Fatal("keys with an error")
			}
			if strings.Contains(data, key32) && strings.Contains(err.Error(), key32) {
				t.Fatal("error echoes key material")
			}
			return
		}
		for id, k := range keys {
			if id == "" || strings.ContainsAny(id, " \t#") || len(k) < MinKeyLen {
				t.Fatalf("bad entry %q → %d bytes", id, len(k))
			}
		}
	})
}

func TestParseServerKeys(t *testing.T) {
	keys, err := ParseServerKeys(key32 + "\n")
	if err != nil || len(keys[DefaultIdentity]) != 32 {
		t.Fatal(keys, err)
	}
	keys, err = ParseServerKeys("# two\na " + key32 + "\nb " + key32 + "\n")
	if err != nil || len(keys) != 2 {
		t.Fatal(keys, err)
	}
}
