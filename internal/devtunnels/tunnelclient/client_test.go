package tunnelclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelhost"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
)

func localAddr(p uint16) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(int(p))) }

func TestEndToEnd(t *testing.T) {
	cases := []struct {
		name       string
		hostMode   tunnelhost.Mode
		clientMode string
		wantProto  string
		e2e        bool
	}{
		{"v2-auto", tunnelhost.ModeAuto, ModeAuto, tunnelproto.SubprotocolClientV2, false},
		{"v2-e2e", tunnelhost.ModeAuto, ModeAuto, tunnelproto.SubprotocolClientV2, true},
		{"v1-forced", tunnelhost.ModeAuto, ModeV1, tunnelproto.SubprotocolClientV1, false},
		{"v1-host", tunnelhost.ModeV1, ModeAuto, tunnelproto.SubprotocolClientV1, false},
		// --e2e on a V1 session changes nothing: V1 is end to end anyway.
		{"v1-e2e", tunnelhost.ModeV1, ModeAuto, tunnelproto.SubprotocolClientV1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			echo := relaytest.Echo(t)
			local := relaytest.FreePort(t)
			e.startHost(tc.hostMode, echo)
			reg := prometheus.NewRegistry()
			r := e.runClient(Config{APIKey: e.APIKey, Mode: tc.clientMode, E2E: tc.e2e, PortMap: map[uint16]uint16{echo: local}, Registerer: reg})
			ev := r.waitEvent(EventReady, echo, 1)
			if ev.Err != nil || ev.LocalPort != local || ev.Addr != localAddr(local) {
				t.Fatalf("ready event %+v, want local %d", ev, local)
			}
			if got := r.c.Protocol(); got != tc.wantProto {
				t.Fatalf("protocol %q, want %q", got, tc.wantProto)
			}
			echoRoundTrip(t, ev.Addr, "hello through "+tc.name)

			t.Run("half-close", func(t *testing.T) { halfClose(t, ev.Addr) })
			t.Run("concurrent", func(t *testing.T) { concurrent(t, ev.Addr, 20, 64<<10) })
			t.Run("metrics", func(t *testing.T) {
				if n := metricValue(t, reg, "warren_tunnel_client_connections_total"); n < 22 {
					t.Errorf("connections_total %v, want >= 22", n)
				}
				e2eWant := 0.0
				if tc.e2e && tc.wantProto == tunnelproto.SubprotocolClientV2 {
					e2eWant = 22 // every connection of this case
				}
				if n := metricValue(t, reg, "warren_tunnel_client_e2e_streams_total"); n != e2eWant {
					t.Errorf("e2e_streams_total %v, want %v", n, e2eWant)
				}
				if n := metricValue(t, reg, "warren_tunnel_client_connected"); n != 1 {
					t.Errorf("connected %v, want 1", n)
				}
				if n := metricValue(t, reg, "warren_tunnel_client_bytes_total"); n < 2*20*(64<<10) {
					t.Errorf("bytes_total %v too small", n)
				}
				// Relay legs with warren at both ends run the none key
				// exchange: the host's always, the client's in V2 (in V1 the
				// client's session is end to end with the host, encrypted).
				if n := e.Metric("warren_relay_tunnel_ssh_sessions_total", "role", "host", "kex", "none"); n != 1 {
					t.Errorf("relay host sessions with kex none: %v, want 1", n)
				}
				wantClient := 0.0
				if tc.wantProto == tunnelproto.SubprotocolClientV2 {
					wantClient = 1
				}
				if n := e.Metric("warren_relay_tunnel_ssh_sessions_total", "role", "client", "kex", "none"); n != wantClient {
					t.Errorf("relay client sessions with kex none: %v, want %v", n, wantClient)
				}
				if n := e.Metric("warren_relay_tunnel_ssh_sessions_total", "role", "client", "kex", "standard"); n != 0 {
					t.Errorf("relay client sessions with a standard kex: %v, want 0", n)
				}
			})
		})
	}
}

// halfClose writes, half-closes and still reads the whole reply and EOF.
func halfClose(t *testing.T, addr string) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("half-close "), 1000)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read after CloseWrite: %v", err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("got %d bytes, want %d", len(got), len(msg))
	}
}

// concurrent runs n connections of size bytes each and checks hashes.
func concurrent(t *testing.T, addr string, n, size int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			data := make([]byte, size)
			_, _ = rand.Read(data)
			want := sha256.Sum256(data)
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			werr := make(chan error, 1)
			go func() {
				_, err := c.Write(data)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			h := sha256.New()
			m, err := io.Copy(h, c)
			if err != nil {
				errs <- fmt.Errorf("conn %d: read: %w", i, err)
				return
			}
			if err := <-werr; err != nil {
				errs <- fmt.Errorf("conn %d: write: %w", i, err)
				return
			}
			if m != int64(size) || !bytes.Equal(h.Sum(nil), want[:]) {
				errs <- fmt.Errorf("conn %d: got %d bytes, hash mismatch", i, m)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAddRemovePort(t *testing.T) {
	for _, mode := range []string{ModeV2, ModeV1} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			echo1, echo2 := relaytest.Echo(t), relaytest.Echo(t)
			l1, l2 := relaytest.FreePort(t), relaytest.FreePort(t)
			h := e.startHost(tunnelhost.ModeAuto, echo1)
			r := e.runClient(Config{APIKey: e.APIKey, Mode: mode, PortMap: map[uint16]uint16{echo1: l1, echo2: l2}})
			ev1 := r.waitEvent(EventReady, echo1, 1)
			echoRoundTrip(t, ev1.Addr, "first")

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.AddPort(ctx, tunnelhost.Port{Number: echo2}); err != nil {
				t.Fatal(err)
			}
			ev2 := r.waitEvent(EventReady, echo2, 1)
			if ev2.Err != nil || ev2.Addr != localAddr(l2) {
				t.Fatalf("ready event %+v", ev2)
			}
			echoRoundTrip(t, ev2.Addr, "second")

			if err := h.RemovePort(ctx, echo2); err != nil {
				t.Fatal(err)
			}
			rm := r.waitEvent(EventRemoved, echo2, 1)
			if rm.LocalPort != l2 {
				t.Fatalf("removed event %+v", rm)
			}
			if c, err := net.DialTimeout("tcp", localAddr(l2), time.Second); err == nil {
				c.Close()
				t.Fatalf("listener of removed port still accepts")
			}
			echoRoundTrip(t, ev1.Addr, "first again")
		})
	}
}

func TestListenFailureIsNotFatal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	echo1, echo2 := relaytest.Echo(t), relaytest.Echo(t)
	l1 := relaytest.FreePort(t)
	e.startHost(tunnelhost.ModeAuto, echo1, echo2)
	// echo2 is unmapped: its local port is taken by the echo server itself.
	r := e.runClient(Config{APIKey: e.APIKey, PortMap: map[uint16]uint16{echo1: l1}})
	bad := r.waitEvent(EventReady, echo2, 1)
	if bad.Err == nil {
		t.Fatalf("want a listen error for port %d, got %+v", echo2, bad)
	}
	ok := r.waitEvent(EventReady, echo1, 1)
	echoRoundTrip(t, ok.Addr, "still works")
}

func TestFatalErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	run := func(cfg Config) error {
		t.Helper()
		c, err := e.newClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err = c.Run(ctx, nil)
		if ctx.Err() != nil {
			t.Fatalf("Run did not fail in time")
		}
		return err
	}
	t.Run("no-host", func(t *testing.T) {
		if err := run(Config{APIKey: e.APIKey}); !errors.Is(err, ErrNoHost) {
			t.Fatalf("err %v, want ErrNoHost", err)
		}
	})
	t.Run("unknown-tunnel", func(t *testing.T) {
		if err := run(Config{APIKey: e.APIKey, TunnelID: "nope"}); !errors.Is(err, ErrTunnelNotFound) {
			t.Fatalf("err %v, want ErrTunnelNotFound", err)
		}
	})
	t.Run("bad-api-key", func(t *testing.T) {
		if err := run(Config{APIKey: "wrong"}); !errors.Is(err, ErrRefused) {
			t.Fatalf("err %v, want ErrRefused", err)
		}
	})
	t.Run("bad-token", func(t *testing.T) {
		if err := run(Config{ConnectToken: "not-a-token"}); !errors.Is(err, ErrRefused) {
			t.Fatalf("err %v, want ErrRefused", err)
		}
	})
	t.Run("no-credentials", func(t *testing.T) {
		if _, err := e.newClient(Config{}); !errors.Is(err, ErrBadConfig) {
			t.Fatalf("err %v, want ErrBadConfig", err)
		}
	})
}

func TestConnectTokenOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	echo := relaytest.Echo(t)
	local := relaytest.FreePort(t)
	e.startHost(tunnelhost.ModeAuto, echo)
	r := e.runClient(Config{ConnectToken: e.ConnectToken(), PortMap: map[uint16]uint16{echo: local}})
	ev := r.waitEvent(EventReady, echo, 1)
	echoRoundTrip(t, ev.Addr, "token only")
}

func TestRelayRestart(t *testing.T) {
	for _, mode := range []string{ModeV2, ModeV1} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			echo := relaytest.Echo(t)
			local := relaytest.FreePort(t)
			e.startHost(tunnelhost.ModeAuto, echo)
			r := e.runClient(Config{APIKey: e.APIKey, Mode: mode, PortMap: map[uint16]uint16{echo: local}})
			ev := r.waitEvent(EventReady, echo, 1)
			echoRoundTrip(t, ev.Addr, "before restart")
			r.waitEvent(EventConnected, 0, 1)

			e.Restart()
			r.waitEvent(EventDisconnected, 0, 1)
			// Accepted while disconnected: the connection waits for a new
			// session that forwards the port (the host reconnects too).
			echoRoundTrip(t, localAddr(local), "accepted while disconnected")
			r.waitEvent(EventConnected, 0, 2)
			echoRoundTrip(t, localAddr(local), "after restart")
			if n := r.count(EventRemoved, 0); n != 0 {
				t.Errorf("%d removed events across the restart", n)
			}
			if got := r.c.Listeners()[echo]; got != localAddr(local) {
				t.Fatalf("listener %q after restart", got)
			}
		})
	}
}

// TestHostLossIsRetried: after a first session, a lost host (404 / no
// endpoint) is retried rather than fatal, and a new host is picked up.
func TestHostLossIsRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	echo := relaytest.Echo(t)
	local := relaytest.FreePort(t)
	_, stop := e.startHostStoppable(tunnelhost.ModeAuto, echo)
	reg := prometheus.NewRegistry()
	r := e.runClient(Config{APIKey: e.APIKey, PortMap: map[uint16]uint16{echo: local}, Registerer: reg})
	ev := r.waitEvent(EventReady, echo, 1)
	echoRoundTrip(t, ev.Addr, "first host")
	stop()
	r.waitEvent(EventDisconnected, 0, 1)
	// A few failed attempts without a host: the lost session is the
	// first retry, three more are attempts that found no host.
	relaytest.WaitFor(t, "retries without a host", 15*time.Second, func() bool {
		return metricValue(t, reg, "warren_tunnel_client_retries_total") >= 4
	})
	select {
	case err := <-r.res:
		t.Fatalf("Run returned %v after the host left", err)
	default:
	}
	e.startHost(tunnelhost.ModeV1, echo)
	r.waitEvent(EventConnected, 0, 2)
	echoRoundTrip(t, localAddr(local), "second host")
	if got := r.c.Protocol(); got != tunnelproto.SubprotocolClientV1 {
		t.Fatalf("protocol %q after a V1 host, want V1", got)
	}
}

// metricValue sums the samples of a counter or gauge family.
func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// skewAfterGET is an http.RoundTripper that moves the relay's clock past
// the token lifetime after each successful GET of the tunnel (up to max
// times), so the connect token just issued is expired at the relay upgrade.
type skewAfterGET struct {
	e    *env
	max  int32
	done atomic.Int32
}

func (s *skewAfterGET) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && resp.StatusCode == 200 && strings.HasPrefix(req.URL.Path, "/tunnels/") {
		if s.done.Add(1) <= s.max {
			s.e.Skew.Add(int64(2 * time.Hour))
		}
	}
	return resp, err
}

func TestTokenRefreshOn401(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	echo := relaytest.Echo(t)
	local := relaytest.FreePort(t)
	e.startHost(tunnelhost.ModeAuto, echo)
	rt := &skewAfterGET{e: e, max: 1}
	r := e.runClient(Config{APIKey: e.APIKey, PortMap: map[uint16]uint16{echo: local}, HTTPClient: &http.Client{Transport: rt}})
	ev := r.waitEvent(EventReady, echo, 1)
	echoRoundTrip(t, ev.Addr, "after refresh")
	if n := rt.done.Load(); n != 2 {
		t.Fatalf("%d tunnel reads, want 2 (initial + one refresh)", n)
	}
}

func TestSecond401IsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	echo := relaytest.Echo(t)
	e.startHost(tunnelhost.ModeAuto, echo)
	rt := &skewAfterGET{e: e, max: 100}
	c, err := e.newClient(Config{APIKey: e.APIKey, PortMap: map[uint16]uint16{echo: relaytest.FreePort(t)}, HTTPClient: &http.Client{Transport: rt}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := c.Run(ctx, nil); !errors.Is(err, ErrRefused) {
		t.Fatalf("err %v, want ErrRefused", err)
	}
	if n := rt.done.Load(); n != 2 {
		t.Fatalf("%d tunnel reads, want 2", n)
	}
}

// TestOfferNonePolicy: a V2 client offers the none key exchange on wss and
// on loopback, and on plain ws beyond loopback only with AllowInsecureNone.
func TestOfferNonePolicy(t *testing.T) {
	for _, tc := range []struct {
		uri      string
		insecure bool
		want     bool
	}{
		{"wss://relay.example/relay/client/t", false, true},
		{"ws://127.0.0.1:8080/relay/client/t", false, true},
		{"ws://relay.example/relay/client/t", false, false},
		{"ws://relay.example/relay/client/t", true, true},
	} {
		c, err := New(Config{RelayURL: "http://relay.example", TunnelID: "t", ConnectToken: "x", AllowInsecureNone: tc.insecure}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.offerNone(tc.uri); got != tc.want {
			t.Errorf("%s (allow insecure %v): offers none = %v, want %v", tc.uri, tc.insecure, got, tc.want)
		}
	}
}
