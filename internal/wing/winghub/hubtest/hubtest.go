// Package hubtest runs the real wing hub on a loopback httptest server for
// the tests of the packages that talk to it (the wing agent, probe's wing
// checks). Tokens are "wing:<user>" and "user:<user>": token checking is
// wingtoken's, tested there. Only tests import it.
package hubtest

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/wing/winghub"
)

// Start runs a hub until the test ends and returns its base URL. reg, if
// not nil, receives the hub's metrics.
func Start(tb testing.TB, reg prometheus.Registerer) string {
	tb.Helper()
	return StartWith(tb, reg, nil)
}

// StartWith is Start with mod applied to the hub's configuration first.
func StartWith(tb testing.TB, reg prometheus.Registerer, mod func(*winghub.Config)) string {
	tb.Helper()
	cfg := winghub.Config{
		Registerer: reg,
		VerifyWing: func(tok string) (winghub.WingIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "wing:"); ok {
				return winghub.WingIdentity{UserID: u}, nil
			}
			return winghub.WingIdentity{}, errors.New("bad token")
		},
		VerifyUser: func(tok string) (winghub.UserIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "user:"); ok {
				return winghub.UserIdentity{UserID: u}, nil
			}
			return winghub.UserIdentity{}, errors.New("bad token")
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	h, err := winghub.New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() { h.Close(); srv.CloseClientConnections(); srv.Close() })
	return srv.URL
}
