package turndial

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pion/stun/v3"
)

// An error response is seen as one whatever pion wraps it in, by value or
// by pointer, and matches the sentinel of its code only.
func TestClassify(t *testing.T) {
	te := &stun.TurnError{ErrorCodeAttr: stun.ErrorCodeAttribute{Code: stun.CodeAllocMismatch, Reason: []byte("Allocation Mismatch")}}
	for _, err := range []error{te, *te, fmt.Errorf("refresh: %w", te)} {
		err = classify(err)
		var re *ResponseError
		if !errors.As(err, &re) || re.Code != 437 || re.Reason != "Allocation Mismatch" {
			t.Errorf("%v: not seen as a 437 error response", err)
		}
		if !errors.Is(err, ErrAllocationMismatch) || errors.Is(err, ErrUnauthorized) {
			t.Errorf("%v: sentinels wrong", err)
		}
		if err.Error() != te.Error() && err.Error() != "refresh: "+te.Error() {
			t.Errorf("text changed: %q", err)
		}
	}
	for code, want := range map[stun.ErrorCode]error{400: ErrBadRequest, 401: ErrUnauthorized, 486: ErrAllocationQuota, 508: ErrInsufficientCapacity} {
		err := classify(&stun.TurnError{ErrorCodeAttr: stun.ErrorCodeAttribute{Code: code}})
		if !errors.Is(err, want) {
			t.Errorf("code %d: %v is not %v", code, err, want)
		}
	}
	timeout := errors.New("all retransmissions failed")
	var re *ResponseError
	if err := classify(timeout); err != timeout || errors.As(err, &re) {
		t.Error("a timeout seen as an error response")
	}
	if classify(nil) != nil {
		t.Error("classify(nil) != nil")
	}
}

func TestAllocateErrorNamesRefusedCredentials(t *testing.T) {
	for code, want := range map[stun.ErrorCode]string{
		401: "allocate on h:1: the TURN server refused the credentials (401 Unauthorized;",
		400: "allocate on h:1: the TURN server refused the credentials (400 Bad Request,",
		486: "allocate on h:1: Allocate error response (error 486",
	} {
		err := allocateError("h:1", classify(&stun.TurnError{StunMessageType: stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse),
			ErrorCodeAttr: stun.ErrorCodeAttribute{Code: code, Reason: []byte("x")}}))
		if got := err.Error(); len(got) < len(want) || got[:len(want)] != want {
			t.Errorf("code %d: %q, want prefix %q", code, got, want)
		}
	}
}
