package cli

import (
	"errors"
	"fmt"
)

// Exit codes of the daemons and tools. probe maps onto Nagios codes instead
// (see exitCode).
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Nagios plugin exit codes, used by probe.
const (
	NagiosOK       = 0
	NagiosWarning  = 1
	NagiosCritical = 2
	NagiosUnknown  = 3
)

// UsageError is a mistake in how a command was called: bad flag, bad
// argument, unknown command. It maps to exit code 2 (Nagios: 3).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError.
func Usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ConfigError is a bad configuration value. Where names the source (a flag,
// an environment variable, file:line), Key the config key.
type ConfigError struct {
	Where string
	Key   string
	Err   error
}

func (e *ConfigError) Error() string {
	switch {
	case e.Key != "" && e.Where != "":
		return fmt.Sprintf("config %s (%s): %v", e.Key, e.Where, e.Err)
	case e.Key != "":
		return fmt.Sprintf("config %s: %v", e.Key, e.Err)
	case e.Where != "":
		return fmt.Sprintf("config %s: %v", e.Where, e.Err)
	}
	return "config: " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }

// FieldError lets a config's Validate method blame one key; the loader adds
// where that key was set.
type FieldError struct {
	Key string
	Err error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// FieldErrorf returns a FieldError for key.
func FieldErrorf(key, format string, args ...any) error {
	return &FieldError{Key: key, Err: fmt.Errorf(format, args...)}
}

// ExitError carries an explicit exit code, e.g. probe's check result. A nil
// Err means the command already said what it had to say.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an error that makes the binary exit with code without a message.
func Exit(code int) error { return &ExitError{Code: code} }

// exitCode is the one place errors become exit codes.
func exitCode(err error, nagios bool) int {
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	var ue *UsageError
	var ce *ConfigError
	if errors.As(err, &ue) || errors.As(err, &ce) {
		if nagios {
			return NagiosUnknown
		}
		return ExitUsage
	}
	if nagios {
		// probe could not do its job: that is UNKNOWN, not a verdict on the target.
		return NagiosUnknown
	}
	return ExitFailure
}
