package overlay

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"strings"
)

// MinKeyLen is the shortest PSK accepted, in bytes. Generated keys are 32.
const MinKeyLen = 16

// DefaultIdentity is the PSK identity used when only one key is configured.
const DefaultIdentity = "default"

// ParseKey decodes one std-base64 key.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("key is not std base64: %w", err)
	}
	if len(k) < MinKeyLen {
		return nil, fmt.Errorf("key is %d bytes, want at least %d (generate one with: head -c 32 /dev/urandom | base64)", len(k), MinKeyLen)
	}
	return k, nil
}

// ParseKeyFile parses the server's key file: one "<identity> <base64 key>"
// per line; blank lines and text after '#' are ignored. Errors name the line
// but never echo key material.
func ParseKeyFile(data string) (map[string][]byte, error) {
	keys := map[string][]byte{}
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("line %d: want \"<identity> <base64 key>\", got %d fields", n, len(fields))
		}
		if _, dup := keys[fields[0]]; dup {
			return nil, fmt.Errorf("line %d: identity %q given twice", n, fields[0])
		}
		k, err := ParseKey(fields[1])
		if err != nil {
			return nil, fmt.Errorf("line %d (identity %q): %w", n, fields[0], err)
		}
		keys[fields[0]] = k
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no keys in file")
	}
	return keys, nil
}

// ParseClientKey parses a client's psk value: either a bare base64 key, or
// one key-file line "<identity> <base64 key>" whose identity then overrides
// the configured one (so a server key file line can be handed to a client).
func ParseClientKey(s string) (identity string, key []byte, err error) {
	fields := strings.Fields(s)
	switch len(fields) {
	case 1:
		key, err = ParseKey(fields[0])
		return "", key, err
	case 2:
		key, err = ParseKey(fields[1])
		return fields[0], key, err
	default:
		return "", nil, fmt.Errorf("want \"<base64 key>\" or \"<identity> <base64 key>\"")
	}
}

// ParseServerKeys parses tunnel-server's psk value: a single bare base64
// key (identity "default"), or a key file's content with one
// "<identity> <base64 key>" per line.
func ParseServerKeys(s string) (map[string][]byte, error) {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 1 && len(strings.Fields(lines[0])) == 1 {
		k, err := ParseKey(lines[0])
		if err != nil {
			return nil, err
		}
		return map[string][]byte{DefaultIdentity: k}, nil
	}
	return ParseKeyFile(s)
}
