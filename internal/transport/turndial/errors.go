package turndial

import (
	"errors"

	"github.com/pion/stun/v3"
)

// Sentinels for the TURN error responses a caller may want to tell apart
// (RFC 5389 §15.6, RFC 5766 §6.4). A *ResponseError matches the one of its
// code with errors.Is.
var (
	ErrBadRequest           = errors.New("TURN 400 Bad Request")
	ErrUnauthorized         = errors.New("TURN 401 Unauthorized")
	ErrForbidden            = errors.New("TURN 403 Forbidden")
	ErrAllocationMismatch   = errors.New("TURN 437 Allocation Mismatch")
	ErrStaleNonce           = errors.New("TURN 438 Stale Nonce")
	ErrWrongCredentials     = errors.New("TURN 441 Wrong Credentials")
	ErrAllocationQuota      = errors.New("TURN 486 Allocation Quota Reached")
	ErrInsufficientCapacity = errors.New("TURN 508 Insufficient Capacity")
)

var sentinels = map[stun.ErrorCode]error{
	stun.CodeBadRequest:           ErrBadRequest,
	stun.CodeUnauthorized:         ErrUnauthorized,
	stun.CodeForbidden:            ErrForbidden,
	stun.CodeAllocMismatch:        ErrAllocationMismatch,
	stun.CodeStaleNonce:           ErrStaleNonce,
	stun.CodeWrongCredentials:     ErrWrongCredentials,
	stun.CodeAllocQuotaReached:    ErrAllocationQuota,
	stun.CodeInsufficientCapacity: ErrInsufficientCapacity,
}

// ResponseError is an error response from the TURN server, as opposed to
// a timeout or a closed socket.
type ResponseError struct {
	// Code is the STUN error code, e.g. 401.
	Code int
	// Reason is the server's reason phrase.
	Reason string
	// Err is pion's error (a stun.TurnError); its text is kept.
	Err error
}

func (e *ResponseError) Error() string { return e.Err.Error() }

func (e *ResponseError) Unwrap() error { return e.Err }

// Is matches the sentinel of e's code.
func (e *ResponseError) Is(target error) bool {
	s, ok := sentinels[stun.ErrorCode(e.Code)]
	return ok && s == target
}

// classify puts a *ResponseError in front of pion's error response, so
// that callers can use errors.Is/As; other errors are returned as they are.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var p *stun.TurnError
	var v stun.TurnError
	switch {
	case errors.As(err, &p):
		v = *p
	case errors.As(err, &v):
	default:
		return err
	}
	return &ResponseError{Code: int(v.ErrorCodeAttr.Code), Reason: string(v.ErrorCodeAttr.Reason), Err: err}
}
