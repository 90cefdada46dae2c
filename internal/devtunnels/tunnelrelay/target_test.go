package tunnelrelay

import (
	"errors"
	"testing"
)

func TestCheckTarget(t *testing.T) {
	for _, tc := range []struct {
		url, id, mode, want string
		err                 error
	}{
		{"ws://r", "t", "", ModeAuto, nil},
		{"ws://r", "t", ModeV1, ModeV1, nil},
		{"ws://r", "t", ModeV2, ModeV2, nil},
		{"ws://r", "t", "v3", "", ErrUnknownMode},
		{"", "t", "", "", ErrNoTarget},
		{"ws://r", "", "", "", ErrNoTarget},
	} {
		got, err := CheckTarget(tc.url, tc.id, tc.mode)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("CheckTarget(%q, %q, %q) = %q, %v; want %q, %v", tc.url, tc.id, tc.mode, got, err, tc.want, tc.err)
		}
	}
}
