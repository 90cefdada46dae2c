package wing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKnownWings(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	k, err := openKnownWings("http://relay.example/")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := openKnownWings("http://other.example")
	const k1, k2 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBA="
	for _, step := range []struct {
		kw      *knownWings
		wing    string
		pub     string
		changed bool
	}{
		{k, "box 1", k1, false}, // first use: remembered (a name with a space)
		{k, "box 1", k1, false},
		{k, "box 1", k2, true},
		{other, "box 1", k2, false}, // another relay's box 1 is another wing
		{k, "box2", k2, false},
	} {
		err := step.kw.check(step.wing, step.pub)
		var kc *KeyChangedError
		if got := errors.As(err, &kc); got != step.changed {
			t.Fatalf("check(%s, %q) = %v, want changed=%v", step.kw.relay, step.wing, err, step.changed)
		}
		if kc != nil && (!strings.Contains(kc.Error(), fingerprint(k1)) || !strings.Contains(kc.Error(), fingerprint(k2)) ||
			!strings.Contains(kc.Error(), "wing trust --reset box 1")) {
			t.Fatalf("message: %s", kc)
		}
	}
	if st, err := os.Stat(k.path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("known_wings mode: %v %v", st, err)
	}
	if found, err := k.reset("box 1"); !found || err != nil {
		t.Fatalf("reset: %v %v", found, err)
	}
	if err := k.check("box 1", k2); err != nil {
		t.Fatalf("after reset: %v", err)
	}
	if err := other.check("box 1", k1); err == nil {
		t.Fatal("reset on one relay forgot another relay's wing")
	}
	if found, _ := k.reset("nosuch"); found {
		t.Fatal("reset of an unknown wing found one")
	}
	os.WriteFile(filepath.Join(filepath.Dir(k.path), "known_wings"), []byte("garbage\n"), 0o600)
	if err := k.check("box2", k2); err == nil || !strings.Contains(err.Error(), "known_wings:1") {
		t.Fatalf("malformed file: %v", err)
	}
}
