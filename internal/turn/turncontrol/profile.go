package turncontrol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/redact"
)

// Profile is one `turn:` configuration the control plane can run. Its
// JSON keys are the `turn:` YAML keys of tunnel-client. Secrets are
// referenced by file (link_file, psk_file, rest_secret_file), and read
// each time a session starts; only the link may also be given inline,
// as with `tunnel-client turn`.
type Profile struct {
	Name           string    `json:"name"`
	Provider       string    `json:"provider"`
	Link           string    `json:"link,omitempty"`
	LinkFile       string    `json:"link_file,omitempty"`
	Peer           string    `json:"peer"`
	Listen         string    `json:"listen,omitempty"`
	Ingress        string    `json:"ingress,omitempty"`
	Mode           string    `json:"mode,omitempty"`
	Connections    int       `json:"connections,omitempty"`
	Server         string    `json:"server,omitempty"`
	Port           int       `json:"port,omitempty"`
	BindInterface  string    `json:"bind_interface,omitempty"`
	Compat         bool      `json:"compat_unauthenticated,omitempty"`
	PSKFile        string    `json:"psk_file,omitempty"`
	PSKIdentity    string    `json:"psk_identity,omitempty"`
	RESTSecretFile string    `json:"rest_secret_file,omitempty"`
	CreatedAt      time.Time `json:"created_at,omitzero"`
}

var (
	// ErrInvalidProfile wraps every reason a profile is refused.
	ErrInvalidProfile = errors.New("invalid profile")
	// ErrNotFound: no profile, session or challenge by that name.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the profile exists already, or its session runs.
	ErrConflict = errors.New("conflict")
)

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// inlineSecrets are `turn:` keys a profile must reference by file, with
// the key to use instead.
var inlineSecrets = map[string]string{"psk": "psk_file", "rest_secret": "rest_secret_file"}

// DecodeProfile reads a profile from JSON, strictly: unknown keys are
// refused, and inline secrets are refused with the _file key to use.
func DecodeProfile(r io.Reader) (Profile, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return Profile{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	for k, use := range inlineSecrets {
		if _, ok := raw[k]; ok {
			return Profile{}, fmt.Errorf("%w: %s: profiles hold secret references only, set %s (a file holding it)", ErrInvalidProfile, k, use)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return Profile{}, fmt.Errorf("%w: %w", ErrInvalidProfile, err)
	}
	return p, nil
}

// checkName refuses names that are not safe as file names and URL path
// segments.
func checkName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("%w: name: %q must be 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit", ErrInvalidProfile, name)
	}
	return nil
}

// Redacted is the profile as the API shows it: a link's userinfo hidden,
// and a whole link hidden for providers whose link is itself the secret
// (a VK call invite).
func (p Profile) Redacted() Profile {
	if p.Link == "" {
		return p
	}
	switch strings.ToLower(p.Provider) {
	case "generic-turn", "turn-rest":
		p.Link = redact.String(p.Link)
	default:
		p.Link = redact.Named("link")
	}
	return p
}

// store keeps profiles as <dir>/profiles/<name>.json.
type store struct{ dir string }

func (s store) path(name string) string { return filepath.Join(s.dir, "profiles", name+".json") }

// load reads every stored profile.
func (s store) load() (map[string]Profile, error) {
	if err := os.MkdirAll(filepath.Join(s.dir, "profiles"), 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(s.dir, "profiles", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := map[string]Profile{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("profile %s: %w", f, err)
		}
		var p Profile
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("profile %s: %w", f, err)
		}
		if p.Name+".json" != filepath.Base(f) {
			return nil, fmt.Errorf("profile %s: holds profile %q", f, p.Name)
		}
		out[p.Name] = p
	}
	return out, nil
}

// save writes p atomically: a temporary file in the same directory,
// synced, then renamed over the old one, so a crash leaves either the old
// profile or the new one.
func (s store) save(p Profile) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(s.path(p.Name), append(data, '\n'))
}

func (s store) remove(name string) error {
	if err := os.Remove(s.path(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// writeFileAtomic writes data to path with mode 0600 via a synced
// temporary file and a rename.
func writeFileAtomic(path string, data []byte) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// linkSecrets are the parts of a link worth redacting by value: the whole
// link, its password, and its last path segment (a VK call invite's token).
func linkSecrets(link string) []string {
	out := []string{link}
	if u, err := url.Parse(link); err == nil {
		if pw, ok := u.User.Password(); ok {
			out = append(out, pw)
		}
		if seg := filepath.Base(u.Path); len(seg) >= 8 {
			out = append(out, seg)
		}
	}
	return out
}
