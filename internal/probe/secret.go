package probe

import (
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Secret is a check parameter that must never be shown: an API key, a
// token, a password. In YAML it is given as <key> (the value), <key>_file
// (a file holding it; trailing newline trimmed) or <key>_env (the name of
// an environment variable holding it). It marshals as <redacted:KEY>.
type Secret struct {
	Key   string // the YAML key, e.g. "api_key"; names the placeholder
	Value string
}

// IsSet reports whether a value was given.
func (s Secret) IsSet() bool { return s.Value != "" }

// Placeholder is what output shows instead of the value.
func (s Secret) Placeholder() string { return Placeholder(s.Key) }

// Placeholder is the text that replaces a secret named name.
func Placeholder(name string) string { return "<redacted:" + name + ">" }

// MarshalJSON never writes the value.
func (s Secret) MarshalJSON() ([]byte, error) {
	if !s.IsSet() {
		return []byte(`""`), nil
	}
	return json.Marshal(s.Placeholder())
}

// String never returns the value, so a %v in an error cannot leak it.
func (s Secret) String() string {
	if !s.IsSet() {
		return ""
	}
	return s.Placeholder()
}

// Redactor replaces known secret values in text. It is safe for
// concurrent use; checks add runtime secrets (tickets, fetched tokens)
// while other checks redact.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]string // value → name
	sorted  []string          // values, longest first, so a secret containing another is replaced whole
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{secrets: map[string]string{}} }

// Add registers value under name. Empty values are ignored. The
// URL-escaped form is registered too, since secrets end up in URLs.
func (r *Redactor) Add(name, value string) {
	if r == nil || value == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range []string{value, url.QueryEscape(value), url.PathEscape(value)} {
		if _, ok := r.secrets[v]; !ok {
			r.secrets[v] = name
			r.sorted = append(r.sorted, v)
		}
	}
	sort.SliceStable(r.sorted, func(i, j int) bool { return len(r.sorted[i]) > len(r.sorted[j]) })
}

// Redact returns s with every registered secret replaced by its placeholder.
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.sorted {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Placeholder(r.secrets[v]))
		}
	}
	return s
}

// RedactBytes is Redact for a byte slice.
func (r *Redactor) RedactBytes(b []byte) []byte { return []byte(r.Redact(string(b))) }
