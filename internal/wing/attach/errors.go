package attach

import (
	"errors"
	"fmt"
	"strings"
)

// ErrNoWing: no wing was named, and the user has none connected.
var ErrNoWing = errors.New("no wing of yours is connected to the relay")

// AmbiguousWingError: no wing was named, and the user has several.
type AmbiguousWingError struct {
	WingIDs []string
}

func (e *AmbiguousWingError) Error() string {
	return fmt.Sprintf("you have %d wings; name one: %s", len(e.WingIDs), strings.Join(e.WingIDs, ", "))
}

// NoShellError: a shell (or a command, which runs in the shell) was asked
// of a wing whose registration lists agents but no shell (a wingthing wing
// offers only AI agents); it would only answer "unsupported agent".
type NoShellError struct {
	WingID  string
	Agents  []string // what the wing offers instead; not empty
	Command bool     // the shell was asked to run Options.Command
}

func (e *NoShellError) Error() string {
	return fmt.Sprintf("wing %s offers no shell, only the agents %s", e.WingID, strings.Join(e.Agents, ", "))
}

// RemoteError: the relay or the wing refused or ended the session with an
// error message (wingclient.RemoteError, with the wing it came from).
type RemoteError struct {
	WingID string
	Msg    string
	Code   int // the exit code the wing reported with it; 0 when none
}

func (e *RemoteError) Error() string { return fmt.Sprintf("wing %s: %s", e.WingID, e.Msg) }

// ExitError: the remote program exited with a non-zero code.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("remote program exited with code %d", e.Code) }
