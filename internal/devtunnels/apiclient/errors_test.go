package apiclient_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
)

func TestStatusErrorThrottled(t *testing.T) {
	for status, want := range map[int]bool{429: true, 502: true, 503: true, 500: false, 504: false, 401: false} {
		err := fmt.Errorf("wrapped: %w", &apiclient.StatusError{Op: "relay upgrade", Status: status})
		if got := errors.Is(err, apiclient.ErrThrottled); got != want {
			t.Errorf("status %d: errors.Is(ErrThrottled) = %v, want %v", status, got, want)
		}
	}
}
