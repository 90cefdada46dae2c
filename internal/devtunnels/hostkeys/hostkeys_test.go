package hostkeys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLoadOrCreatePersists: the first call creates both keys (0600), the
// second returns the same keys.
func TestLoadOrCreatePersists(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	first, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[0].PublicKey().Type() != ssh.KeyAlgoED25519 || first[1].PublicKey().Type() != ssh.KeyAlgoECDSA384 {
		t.Fatalf("keys %v", first)
	}
	for _, f := range []string{Ed25519File, ECDSAFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("%s mode %v", f, st.Mode())
		}
	}
	again, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if !bytes.Equal(first[i].PublicKey().Marshal(), again[i].PublicKey().Marshal()) {
			t.Fatalf("key %d changed across loads", i)
		}
	}
	// The loaded key signs what the public key verifies.
	sig, err := again[1].Sign(nil, []byte("data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := first[1].PublicKey().Verify([]byte("data"), sig); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrCreateBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, Ed25519File), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir); err == nil {
		t.Fatal("junk key file accepted")
	}
	// An ed25519 key in the ECDSA file is refused, not silently used.
	dir2 := t.TempDir()
	if _, err := LoadOrCreate(dir2); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir2, Ed25519File))
	if err := os.WriteFile(filepath.Join(dir2, ECDSAFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir2); !errors.Is(err, ErrKeyType) {
		t.Fatalf("err %v, want ErrKeyType", err)
	}
}

func TestGenerate(t *testing.T) {
	t.Parallel()
	keys, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[1].PublicKey().Type() != ssh.KeyAlgoECDSA384 {
		t.Fatalf("keys %v", keys)
	}
}
