package overlay

import (
	"errors"
	"fmt"
)

// Stage names (docs/protocols/turn-overlay.md §3.4). Client and server stages share one namespace.
const (
	StagePolicyValidate     = "policy_validate"
	StageProviderResolve    = "provider_resolve"
	StageLocalBind          = "local_bind"
	StageTURNDial           = "turn_dial"
	StageTURNAllocate       = "turn_allocate"
	StagePeerSetup          = "peer_setup"
	StageDTLSHandshake      = "dtls_handshake"
	StageForwardingLoop     = "forwarding_loop"
	StageSessionSupervision = "session_supervision"
	StageMetricsListen      = "metrics_listen"
	StageMetricsAttach      = "metrics_attach"
	StageShutdown           = "shutdown"
	StageServerInit         = "server_init"
	StageListen             = "listen"
	StageAccept             = "accept"
	StageUpstreamDial       = "upstream_dial"
)

// StageError is an error that happened in a named stage. Its text is
// "stage <stage> failed: <msg>".
type StageError struct {
	Stage string
	Err   error
}

func (e *StageError) Error() string {
	return fmt.Sprintf("stage %s failed: %v", e.Stage, e.Err)
}

func (e *StageError) Unwrap() error { return e.Err }

// Msg is the message without the stage prefix (for "client runtime failed
// stage=<stage>: <msg>").
func (e *StageError) Msg() string {
	if e.Err == nil {
		return "unknown error"
	}
	return e.Err.Error()
}

// Wrap attaches stage to err. If err already carries a stage, err is
// returned unchanged: the innermost stage is the one that says what failed.
func Wrap(stage string, err error) error {
	if err == nil {
		return nil
	}
	var se *StageError
	if errors.As(err, &se) {
		return err
	}
	return &StageError{Stage: stage, Err: err}
}

// Errorf is Wrap(stage, fmt.Errorf(format, args...)).
func Errorf(stage, format string, args ...any) error {
	return Wrap(stage, fmt.Errorf(format, args...))
}

// StageOf returns the innermost stage of err, or "" if it has none.
func StageOf(err error) string {
	var se *StageError
	if errors.As(err, &se) {
		return se.Stage
	}
	return ""
}
