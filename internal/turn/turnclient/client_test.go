package turnclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

var testKey = bytes.Repeat([]byte{0x42}, 32)

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("TURN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startLab(t testing.TB, cfg turnlab.Config) *turnlab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab, err := turnlab.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

// startServer runs a tunnel-server engine on 127.0.0.1 and returns its address.
func startServer(t testing.TB, cfg turnserver.Config) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	s, err := turnserver.New(cfg, testLog(t).With("side", "server"))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return addr.String()
}

type running struct {
	client *Client
	local  string
	ready  chan struct{}
	done   chan error
	cancel context.CancelFunc
}

// startClient runs a client engine; for udp ingress local is the UDP
// address to send to, for tcp ingress the TCP address (known once ready).
func startClient(t testing.TB, cfg Config) *running {
	t.Helper()
	r := &running{ready: make(chan struct{}), done: make(chan error, 1)}
	var once sync.Once
	cfg.OnReady = func() { once.Do(func() { close(r.ready) }) }
	c, err := New(cfg, testLog(t).With("side", "client"))
	if err != nil {
		t.Fatal(err)
	}
	r.client = c
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	if c.cfg.Ingress == "tcp" {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		r.local = ln.Addr().String()
		go func() {
			r.done <- c.RunTCP(ctx, func(context.Context) (net.Listener, error) { return ln, nil })
		}()
	} else {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		pc.(*net.UDPConn).SetReadBuffer(4 << 20)
		r.local = pc.LocalAddr().String()
		go func() { r.done <- c.RunUDP(ctx, pc); pc.Close() }()
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("client did not stop")
		}
	})
	return r
}

func (r *running) waitReady(t testing.TB) {
	t.Helper()
	select {
	case <-r.ready:
	case err := <-r.done:
		t.Fatalf("client ended before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("client not ready after 30s")
	}
}

func baseConfig(lab *turnlab.Lab, peer, mode, ingress string) Config {
	return Config{
		Provider: "generic-turn",
		Link:     fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNUDP),
		TURNPort: portOf(map[string]string{"tcp": lab.TURNTCP}[mode], lab.TURNUDP),
		Peer:     peer, Mode: mode, Ingress: ingress, PSK: testKey,
		BackoffInitial: 20 * time.Millisecond, WorkerSpacing: 20 * time.Millisecond,
	}
}

func portOf(addr, fallback string) int {
	if addr == "" {
		addr = fallback
	}
	_, p, _ := net.SplitHostPort(addr)
	var n int
	fmt.Sscan(p, &n)
	return n
}

// echoOnce sends msg from conn and waits for it to come back.
func echoOnce(t testing.TB, conn net.Conn, msg []byte) {
	t.Helper()
	buf := make([]byte, 2048)
	for try := 0; try < 50; try++ {
		conn.SetDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := conn.Write(msg); err != nil {
			t.Fatal(err)
		}
		for {
			n, err := conn.Read(buf)
			if err != nil {
				break
			}
			if bytes.Equal(buf[:n], msg) {
				return
			}
			if !bytes.HasPrefix(buf[:n], msg[:4]) {
				t.Fatalf("got a reply that is not ours: %q", buf[:n])
			}
		}
	}
	t.Fatalf("no echo of %q", msg)
}

func TestUDPOverlay(t *testing.T) {
	for _, mode := range []string{"udp", "tcp"} {
		t.Run("turn-over-"+mode, func(t *testing.T) {
			lab := startLab(t, turnlab.Config{})
			sreg, creg := prometheus.NewRegistry(), prometheus.NewRegistry()
			peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}, Registry: sreg})
			cfg := baseConfig(lab, peer, mode, "udp")
			cfg.Connections = 4
			cfg.Registry = creg
			r := startClient(t, cfg)
			r.waitReady(t)

			// Two local peers; each must get only its own echoes.
			var conns []net.Conn
			for i := range 2 {
				c, err := net.Dial("udp4", r.local)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				conns = append(conns, c)
				echoOnce(t, c, []byte(fmt.Sprintf("P%d-first", i)))
			}
			for round := range 20 {
				for i, c := range conns {
					echoOnce(t, c, []byte(fmt.Sprintf("P%d-round-%d", i, round)))
				}
			}
			// PSK sessions carry peer ids: all four workers serve both peers.
			if n := len(r.client.router.framedWorkers()); n != 4 {
				t.Fatalf("%d framed workers, want 4", n)
			}

			// Metrics: series present, no session_id, byte counters consistent.
			assertMetrics(t, creg, "client", []string{"local_to_relay", "relay_to_local"})
			assertMetrics(t, sreg, "server", []string{"client_to_upstream", "upstream_to_client"})
			// What the client forwarded is what the server received, and back.
			waitEqual(t, "client local_to_relay vs server client_to_upstream",
				func() float64 { return counterValue(r.client.m.Bytes.WithLabelValues("local_to_relay")) },
				func() float64 {
					return gatherValue(t, sreg, "warren_runtime_forwarded_bytes_total", "client_to_upstream")
				})
			waitEqual(t, "server upstream_to_client vs client relay_to_local",
				func() float64 {
					return gatherValue(t, sreg, "warren_runtime_forwarded_bytes_total", "upstream_to_client")
				},
				func() float64 { return counterValue(r.client.m.Bytes.WithLabelValues("relay_to_local")) })
			if counterValue(r.client.m.Bytes.WithLabelValues("local_to_relay")) == 0 {
				t.Fatal("no bytes counted")
			}
		})
	}
}

func assertMetrics(t *testing.T, reg *prometheus.Registry, runtime string, dirs []string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"warren_runtime_session_starts_total": false, "warren_runtime_active_workers": false,
		"warren_runtime_forwarded_packets_total": false, "warren_runtime_forwarded_bytes_total": false,
		"warren_runtime_dropped_packets_total": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; ok {
			want[mf.GetName()] = true
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "session_id" {
					t.Errorf("%s has a session_id label", mf.GetName())
				}
				if l.GetName() == "runtime" && l.GetValue() != runtime {
					t.Errorf("%s runtime=%s", mf.GetName(), l.GetValue())
				}
			}
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s missing", name)
		}
	}
	_ = dirs
}

func TestTCPOverlay(t *testing.T) {
	for _, mode := range []string{"udp", "tcp"} {
		t.Run("turn-over-"+mode, func(t *testing.T) {
			lab := startLab(t, turnlab.Config{})
			peer := startServer(t, turnserver.Config{Connect: lab.EchoTCP, Egress: "tcp", Keys: map[string][]byte{"default": testKey}})
			cfg := baseConfig(lab, peer, mode, "tcp")
			cfg.Connections = 2
			cfg.Registry = prometheus.NewRegistry()
			r := startClient(t, cfg)
			r.waitReady(t)
			var wg sync.WaitGroup
			for i := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tcpEcho(t, r.local, 256<<10, i)
				}()
			}
			wg.Wait()
			sent := counterValue(r.client.m.Bytes.WithLabelValues("local_to_relay"))
			back := counterValue(r.client.m.Bytes.WithLabelValues("relay_to_local"))
			if sent != 4*256<<10 || back != sent {
				t.Fatalf("byte counters: sent %v back %v, want %d", sent, back, 4*256<<10)
			}
		})
	}
}

func tcpEcho(t testing.TB, addr string, size, id int) {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Errorf("stream %d: read: %v", id, err)
		return
	}
	if err := <-errc; err != nil {
		t.Errorf("stream %d: write: %v", id, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("stream %d: data differs", id)
	}
}

// TestPSKMismatchFailsAtHandshake: a wrong key or an unknown identity is
// refused by tunnel-server with an alert, so the client fails at once
// with an error naming the PSK. Both handshake timeouts are far longer
// than the wait: only the alert can end these handshakes in time.
func TestPSKMismatchFailsAtHandshake(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}, HandshakeTimeout: 10 * time.Minute})
	for name, tc := range map[string]struct {
		mut  func(*Config)
		want string
	}{
		"wrong key":        {func(c *Config) { c.PSK = bytes.Repeat([]byte{1}, 32) }, `its key for psk_identity "default" differs from this psk`},
		"unknown identity": {func(c *Config) { c.PSKIdentity = "mallory" }, `it has no key for psk_identity "mallory"`},
		"compat client":    {func(c *Config) { c.Compat = true }, "InsufficientSecurity"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := baseConfig(lab, peer, "udp", "udp")
			cfg.HandshakeTimeout = 10 * time.Minute
			tc.mut(&cfg)
			r := startClient(t, cfg)
			select {
			case err := <-r.done:
				if overlay.StageOf(err) != overlay.StageDTLSHandshake || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want stage dtls_handshake and %q, got %v", tc.want, err)
				}
				if !cfg.Compat && !errors.Is(err, turndial.ErrPSKRefused) {
					t.Fatalf("%v is not ErrPSKRefused", err)
				}
				r.done <- err // for cleanup
			case <-r.ready:
				t.Fatal("handshake succeeded")
			case <-time.After(60 * time.Second):
				t.Fatal("no refusal: the client is waiting for its handshake timeout")
			}
		})
	}
}

func TestCompatProfiles(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	compatOnly := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Compat: true})
	both := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Compat: true, Keys: map[string][]byte{"default": testKey}})
	cases := []struct {
		name   string
		peer   string
		compat bool
	}{{"compat client, compat server", compatOnly, true}, {"compat client, psk+compat server", both, true}, {"psk client, psk+compat server", both, false}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := baseConfig(lab, tc.peer, "udp", "udp")
			cfg.Compat = tc.compat
			r := startClient(t, cfg)
			r.waitReady(t)
			c, _ := net.Dial("udp4", r.local)
			defer c.Close()
			echoOnce(t, c, []byte("compat-hello"))
		})
	}
}

func TestWorkerRestartAfterAllocationKilled(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "tcp", "udp")
	cfg.Connections = 2
	cfg.Registry = prometheus.NewRegistry()
	r := startClient(t, cfg)
	r.waitReady(t)
	c, _ := net.Dial("udp4", r.local)
	defer c.Close()
	echoOnce(t, c, []byte("before-kill"))
	if n := lab.KillTCP(); n != 2 {
		t.Fatalf("killed %d TURN connections, want 2", n)
	}
	// The workers restart on new allocations and the echo works again.
	deadline := time.Now().Add(20 * time.Second)
	for counterValue(r.client.m.TransportFailure.WithLabelValues(overlay.StageForwardingLoop)) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("workers did not notice the killed allocations")
		}
		time.Sleep(20 * time.Millisecond)
	}
	echoOnce(t, c, []byte("after-kill"))
	select {
	case err := <-r.done:
		t.Fatalf("session ended: %v", err)
	default:
	}
}

func TestRestartBudgetExhausted(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "tcp", "udp")
	cfg.RestartBudget = 2
	cfg.BackoffInitial = 10 * time.Millisecond
	r := startClient(t, cfg)
	r.waitReady(t)
	deadline := time.After(60 * time.Second)
	for {
		lab.KillTCP()
		select {
		case err := <-r.done:
			if overlay.StageOf(err) != overlay.StageSessionSupervision || !strings.Contains(err.Error(), "budget") {
				t.Fatalf("want session_supervision budget error, got %v", err)
			}
			r.done <- err
			return
		case <-deadline:
			t.Fatal("budget never exhausted")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestPolicyAndProviderErrors(t *testing.T) {
	_, err := New(Config{Provider: "generic-turn", Link: "x", Peer: "h:1"}, nil)
	if overlay.StageOf(err) != overlay.StagePolicyValidate || !strings.Contains(err.Error(), "psk") {
		t.Fatalf("missing psk: %v", err)
	}
	_, err = New(Config{Provider: "generic-turn", Link: "x", Peer: "h:1", PSK: testKey, BindIP: "eth0"}, nil)
	if !strings.Contains(fmt.Sprint(err), "not a literal IP") {
		t.Fatalf("bind interface: %v", err)
	}
	c, err := New(Config{Provider: "vk", Link: "x", Peer: "127.0.0.1:1", PSK: testKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = c.RunUDP(ctx, pc)
	var se *turnprovider.StageError
	if !errors.As(err, &se) || se.Code != turnprovider.CodeInvalidLink || overlay.StageOf(err) != overlay.StageProviderResolve {
		t.Fatalf("vk: %v", err)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func waitEqual(t *testing.T, what string, a, b func() float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		x, y := a(), b()
		if x == y {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v != %v", what, x, y)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gatherValue(t *testing.T, reg *prometheus.Registry, name, direction string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "direction" && l.GetValue() == direction {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// TestReplyRoutingExpiry: two local peers share 4 workers exclusively;
// after A idles past the expiry, B's traffic takes A's workers (docs/protocols/turn-overlay.md §6.8,
// with a short expiry).
// TestReplyRoutingExpiry: raw (compat) workers are bound to one local
// peer each; an idle peer's workers go to the active one.
func TestReplyRoutingExpiry(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoUDP, Compat: true})
	cfg := baseConfig(lab, peer, "udp", "udp")
	cfg.Compat = true
	cfg.Connections = 4
	cfg.PeerIdle = 500 * time.Millisecond
	r := startClient(t, cfg)
	r.waitReady(t)
	a, _ := net.Dial("udp4", r.local)
	defer a.Close()
	b, _ := net.Dial("udp4", r.local)
	defer b.Close()
	echoOnce(t, a, []byte("AAAA-1"))
	echoOnce(t, b, []byte("BBBB-1"))
	if na, nb := len(r.client.router.workersOf(a.LocalAddr().String())), len(r.client.router.workersOf(b.LocalAddr().String())); na != 3 || nb != 1 {
		t.Fatalf("A holds %d, B holds %d; want 3 and 1", na, nb)
	}
	// B keeps talking while A is silent past the expiry.
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; len(r.client.router.workersOf(b.LocalAddr().String())) != 4; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("B holds %v after A's expiry", r.client.router.workersOf(b.LocalAddr().String()))
		}
		echoOnce(t, b, []byte(fmt.Sprintf("BBBB-%d", i)))
		time.Sleep(50 * time.Millisecond)
	}
	for i := range 8 {
		echoOnce(t, b, []byte(fmt.Sprintf("BBBB-after-%d", i)))
	}
}

// TestTCPSessionKilled: killing one worker's TURN connection closes the
// streams of its smux session only; the others keep working, and new
// streams work (docs/protocols/turn-overlay.md §3.1 tcp overlay, §6.7).
func TestTCPSessionKilled(t *testing.T) {
	lab := startLab(t, turnlab.Config{})
	peer := startServer(t, turnserver.Config{Connect: lab.EchoTCP, Egress: "tcp", Keys: map[string][]byte{"default": testKey}})
	cfg := baseConfig(lab, peer, "tcp", "tcp")
	cfg.Connections = 2
	r := startClient(t, cfg)
	r.waitReady(t)
	var conns []net.Conn
	for range 4 {
		c, err := net.DialTimeout("tcp4", r.local, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	roundTrip := func(c net.Conn, msg string) error {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			return err
		}
		buf := make([]byte, len(msg))
		_, err := io.ReadFull(c, buf)
		if err == nil && string(buf) != msg {
			err = fmt.Errorf("got %q", buf)
		}
		return err
	}
	for i, c := range conns {
		if err := roundTrip(c, fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	if !lab.KillOneTCP() {
		t.Fatal("no TURN connection to kill")
	}
	// Streams on the dead session end; the others still echo.
	deadline := time.Now().Add(20 * time.Second)
	for {
		dead := 0
		for i, c := range conns {
			if c == nil {
				dead++
				continue
			}
			if err := roundTrip(c, fmt.Sprintf("after-%d", i)); err != nil {
				conns[i].Close()
				conns[i] = nil
				dead++
			}
		}
		if dead == 2 {
			break
		}
		if dead > 2 || time.Now().After(deadline) {
			t.Fatalf("%d of 4 streams ended, want the 2 of the killed session", dead)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tcpEcho(t, r.local, 64<<10, 99)
}
