package wingagent

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/wing/winghub/hubtest"
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
	return hubtest.Start(tb, reg), reg
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
