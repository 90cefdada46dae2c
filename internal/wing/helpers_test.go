package wing

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/winghub"
)

// testRelay runs the real hub on loopback; tokens are "wing:<user>" and
// "user:<user>" (token checking is wingtoken's, tested there).
func testRelay(tb testing.TB) string {
	url, _ := testRelayWithMetrics(tb)
	return url
}

func testRelayWithMetrics(tb testing.TB) (string, *prometheus.Registry) {
	tb.Helper()
	reg := prometheus.NewRegistry()
	h, err := winghub.New(winghub.Config{
		Registerer: reg,
		VerifyWing: func(tok string) (winghub.WingIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "wing:"); ok {
				return winghub.WingIdentity{UserID: u}, nil
			}
			return winghub.WingIdentity{}, errors.New("bad")
		},
		VerifyUser: func(tok string) (winghub.UserIdentity, error) {
			if u, ok := strings.CutPrefix(tok, "user:"); ok {
				return winghub.UserIdentity{UserID: u}, nil
			}
			return winghub.UserIdentity{}, errors.New("bad")
		},
	}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Register(mux)
	srv := httptest.NewServer(mux)
	tb.Cleanup(func() { h.Close(); srv.CloseClientConnections(); srv.Close() })
	return srv.URL, reg
}

// counter reads a counter from reg.
func counter(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// startAgent runs a wing against url until the test ends.
func startAgent(tb testing.TB, url string, mod func(*Config)) *Agent {
	tb.Helper()
	key, err := LoadOrCreateIdentity(tb.TempDir() + "/id.key")
	if err != nil {
		tb.Fatal(err)
	}
	connected := make(chan struct{}, 1)
	cfg := Config{RelayURL: url, Token: "wing:alice", WingID: "box", Key: key, Shell: "/bin/sh",
		AllowCommands: true, Env: []string{"PS1=$ "},
		OnState: func(s State) {
			if s == StateConnected {
				select {
				case connected <- struct{}{}:
				default:
				}
			}
		}}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg, nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		tb.Fatal("wing did not connect")
	}
	return a
}
