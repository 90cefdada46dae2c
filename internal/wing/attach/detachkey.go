package attach

import (
	"fmt"
	"strings"
)

// ParseDetachKey turns "ctrl-]" (or "ctrl-a" ..., or "none") into a byte;
// 0 means no detach key.
func ParseDetachKey(s string) (byte, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "none" || s == "" {
		return 0, nil
	}
	k, ok := strings.CutPrefix(s, "ctrl-")
	if !ok || len(k) != 1 {
		return 0, fmt.Errorf("expected ctrl-X (such as ctrl-] or ctrl-q) or none, got %q", s)
	}
	c := k[0]
	switch {
	case c >= 'a' && c <= 'z':
		return c - 'a' + 1, nil
	case c >= '[' && c <= '_':
		return c - '[' + 0x1b, nil
	}
	return 0, fmt.Errorf("no control key for %q", s)
}
