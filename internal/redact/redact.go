package redact

import "regexp"

// Placeholder replaces every secret.
const Placeholder = "<redacted>"

var (
	// userinfo of generic-turn://, turn://, turns:// and turn-rest:// links,
	// up to the last '@' before the host.
	linkUserinfo = regexp.MustCompile(`(?i)\b(generic-turn|turns?|turn-rest)://[^\s/?#@"']*@`)
	// secret query parameters, wherever they appear in a URL or log line.
	queryParam = regexp.MustCompile(`(?i)([?&;](?:access_token|anonym_token|session_key|credential|password|username|token)=)[^&#\s"']*`)
	// "credential"/"password"/"username" JSON string fields.
	jsonField = regexp.MustCompile(`(?i)("(?:credential|password|username)"\s*:\s*)"(?:[^"\\]|\\.)*"`)
)

// String returns s with every secret it recognises replaced.
func String(s string) string {
	s = linkUserinfo.ReplaceAllString(s, "${1}://"+Placeholder+"@")
	s = queryParam.ReplaceAllString(s, "${1}"+Placeholder)
	s = jsonField.ReplaceAllString(s, `${1}"`+Placeholder+`"`)
	return s
}

// Bytes is String for byte slices (JSON bodies).
func Bytes(b []byte) []byte { return []byte(String(string(b))) }
