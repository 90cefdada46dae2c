package turndial

import (
	"errors"
	"testing"
)

func TestServerOptionsNeedsSomething(t *testing.T) {
	if _, err := ServerOptions(ServerProfile{}); !errors.Is(err, ErrNoProfile) {
		t.Fatalf("no keys and no compat: %v, want ErrNoProfile", err)
	}
}
