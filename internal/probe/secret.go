package probe

import (
	"encoding/json"

	"github.com/warrenhq/warren/internal/redact"
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
func (s Secret) Placeholder() string { return redact.Named(s.Key) }

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
