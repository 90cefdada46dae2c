package redact

import (
	"net/url"
	"sort"
	"strings"
	"sync"
)

// Named is the text that replaces a secret known under a name, e.g.
// <redacted:api_key>, so output still says which secret was there.
func Named(name string) string { return "<redacted:" + name + ">" }

// Redactor replaces known secret values in text. It is safe for
// concurrent use: probe checks add runtime secrets (tickets, fetched
// tokens) while other checks redact. A nil *Redactor redacts nothing.
type Redactor struct {
	mu      sync.RWMutex
	secrets map[string]string // value → name
	sorted  []string          // values, longest first, so a secret containing another is replaced whole
}

// NewRedactor returns an empty Redactor.
func NewRedactor() *Redactor { return &Redactor{secrets: map[string]string{}} }

// Add registers value under name. Empty values are ignored. The
// URL-escaped forms are registered too, since secrets end up in URLs.
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

// Redact returns s with every registered secret replaced by Named(its name).
func (r *Redactor) Redact(s string) string {
	if r == nil || s == "" {
		return s
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, v := range r.sorted {
		if strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, Named(r.secrets[v]))
		}
	}
	return s
}

// RedactBytes is Redact for a byte slice.
func (r *Redactor) RedactBytes(b []byte) []byte { return []byte(r.Redact(string(b))) }

// URLPassword hides the password of a URL with credentials in it (a TURN
// link, a database DSN) behind Placeholder. ok is false, and s is not
// returned, when s is not such a URL.
func URLPassword(s string) (redacted string, ok bool) {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Scheme == "" {
		return "", false
	}
	if _, has := u.User.Password(); !has {
		return "", false
	}
	// url.UserPassword would escape the placeholder's < and >.
	u.User = url.UserPassword(u.User.Username(), "REDACTED")
	return strings.Replace(u.String(), "REDACTED", Placeholder, 1), true
}
