package hostkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

// File names of the keys in their directory.
const (
	Ed25519File = "ssh_host_ed25519_key"
	ECDSAFile   = "ssh_host_ecdsa_key"
)

// ErrKeyType is returned for a key file that holds another kind of key
// than its name says.
var ErrKeyType = errors.New("hostkeys: wrong key type in file")

// Generate returns a fresh ed25519 and ECDSA P-384 signer, in that order,
// for callers that keep no state (tests, throwaway relays).
func Generate() ([]ssh.Signer, error) {
	var out []ssh.Signer
	for _, gen := range []func() (crypto.Signer, error){genEd25519, genECDSA} {
		k, err := gen()
		if err != nil {
			return nil, fmt.Errorf("hostkeys: generate: %w", err)
		}
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			return nil, fmt.Errorf("hostkeys: %w", err)
		}
		out = append(out, s)
	}
	return out, nil
}

// LoadOrCreate returns the ed25519 and ECDSA P-384 signers kept in dir, in
// that order, creating dir (0700) and any missing key. A key file that
// cannot be read or parsed is an error naming it: it is never replaced,
// since peers may know the key.
func LoadOrCreate(dir string) ([]ssh.Signer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("hostkeys: %w", err)
	}
	var out []ssh.Signer
	for _, k := range []struct {
		file string
		gen  func() (crypto.Signer, error)
		typ  string
	}{{Ed25519File, genEd25519, ssh.KeyAlgoED25519}, {ECDSAFile, genECDSA, ssh.KeyAlgoECDSA384}} {
		path := filepath.Join(dir, k.file)
		s, err := loadOrCreate(path, k.gen)
		if err != nil {
			return nil, err
		}
		if got := s.PublicKey().Type(); got != k.typ {
			return nil, fmt.Errorf("%w: %s holds %s, want %s", ErrKeyType, path, got, k.typ)
		}
		out = append(out, s)
	}
	return out, nil
}

func loadOrCreate(path string, gen func() (crypto.Signer, error)) (ssh.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("hostkeys: %s: %w", path, err)
		}
		return s, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("hostkeys: %w", err)
	}
	key, err := gen()
	if err != nil {
		return nil, fmt.Errorf("hostkeys: generate %s: %w", path, err)
	}
	block, err := ssh.MarshalPrivateKey(key, "warren host key")
	if err != nil {
		return nil, fmt.Errorf("hostkeys: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(block)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			// Another process wrote it first: use theirs.
			return loadOrCreate(path, gen)
		}
		return nil, fmt.Errorf("hostkeys: %w", err)
	}
	return ssh.NewSignerFromKey(key)
}

// writeNew writes data to path, which must not exist yet, all or nothing:
// a temporary file in the same directory is linked into place.
func writeNew(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".hostkey-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path) // fails with ErrExist instead of replacing
}

func genEd25519() (crypto.Signer, error) {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	return k, err
}

func genECDSA() (crypto.Signer, error) {
	return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
}
