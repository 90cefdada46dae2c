package probe

import (
	"fmt"
	"strings"
)

// Status is a check or run outcome; its value is the Nagios exit code.
type Status int

// Statuses, valued as Nagios exit codes.
const (
	OK       Status = 0
	Warning  Status = 1
	Critical Status = 2
	Unknown  Status = 3
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warning:
		return "WARNING"
	case Critical:
		return "CRITICAL"
	}
	return "UNKNOWN"
}

// ExitCode is the Nagios exit code of s.
func (s Status) ExitCode() int { return int(s) }

// rank orders statuses by badness: CRITICAL outranks UNKNOWN so that a
// down service is reported even when another check could not judge.
func (s Status) rank() int {
	switch s {
	case OK:
		return 0
	case Warning:
		return 1
	case Unknown:
		return 2
	}
	return 3
}

// Worst returns the worse of a and b (OK < WARNING < UNKNOWN < CRITICAL).
func Worst(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// MarshalText writes the name, e.g. "CRITICAL".
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a name (any case).
func (s *Status) UnmarshalText(b []byte) error {
	switch strings.ToUpper(string(b)) {
	case "OK":
		*s = OK
	case "WARNING":
		*s = Warning
	case "CRITICAL":
		*s = Critical
	case "UNKNOWN":
		*s = Unknown
	default:
		return fmt.Errorf("unknown status %q", b)
	}
	return nil
}
