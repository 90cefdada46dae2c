package tunnelhost

// Benchmarks of a forwarded connection through relay-server
// (internal/relayserver, in process, loopback) and a tunnel host, against the
// direct loopback path, in the same run (scripts/bench.sh prints the
// ratios):
//
//   - *Throughput: benchBytes echoed per op on one established connection
//     (a writer goroutine sends, the benchmark reads everything back, so
//     every byte crosses the path twice; MB/s counts the payload once, the
//     same way for every path).
//   - *RTT: b.N round trips of a pingSize message on one connection, with
//     p50-µs and p99-µs from the per-round-trip durations.
//   - BenchmarkIdleConnMemory: heap per idle forwarded V2 connection.
//
// Direct is a TCP connection to the echo server. V2 is the raw x/crypto V2
// client (forwarded-tcpip bridged by the relay to a V2 host). V1 is the
// official Go SDK client (nested SSH inside client-ssh-session-stream) with
// a host forced to V1 (ModeV1), through net.Pipe as in the tests.
//
// The env helpers in helpers_test.go take a *testing.T, so the rig here is
// a testing.TB copy of the parts the benchmarks need.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

const (
	benchBytes   = 16 << 20 // per throughput op
	pingSize     = 64       // RTT message
	idleConns    = 200      // BenchmarkIdleConnMemory
	benchTimeout = 2 * time.Minute
)

// benchRig is a relay-server on loopback with one tunnel, an echo server,
// and optionally a running tunnel host forwarding the echo port.
type benchRig struct {
	*relaytest.Relay
	tb   testing.TB
	echo uint16
}

func newBenchRig(tb testing.TB) *benchRig {
	tb.Helper()
	return &benchRig{Relay: relaytest.Start(tb), tb: tb, echo: relaytest.Echo(tb)}
}

// startHost runs a tunnel host forwarding the echo port until cleanup and
// waits until it is connected.
func (r *benchRig) startHost(mode Mode, extra ...uint16) {
	r.tb.Helper()
	ports := []Port{{Number: r.echo}}
	for _, p := range extra {
		ports = append(ports, Port{Number: p})
	}
	cfg := Config{RelayURL: r.URL, TunnelID: r.Tunnel, APIKey: r.APIKey, Mode: mode, Ports: ports}
	h, err := New(cfg, nil)
	if err != nil {
		r.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = h.Run(ctx); close(done) }()
	r.tb.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.tb.Errorf("host Run did not return after cancel")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for h.Status() != StatusConnected {
		if time.Now().After(deadline) {
			r.tb.Fatalf("host not connected: %s", h.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// directConn is a plain TCP connection to the echo server.
func (r *benchRig) directConn() io.ReadWriteCloser {
	r.tb.Helper()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(int(r.echo))))
	if err != nil {
		r.tb.Fatal(err)
	}
	r.tb.Cleanup(func() { c.Close() })
	return c
}

// v2Client connects a raw x/crypto client on the V2 client socket.
func (r *benchRig) v2Client() (ssh.Conn, string) {
	r.tb.Helper()
	code, b := r.Do("GET", "/tunnels/"+r.Tunnel+"?api-version="+tunnelproto.APIVersion+"&includePorts=true&tokenScopes=connect", "Bearer "+r.APIKey, "")
	var view tunnelproto.Tunnel
	if code != 200 || json.Unmarshal(b, &view) != nil || len(view.Endpoints) != 1 {
		r.tb.Fatalf("GET tunnel: %d %s", code, b)
	}
	tok := view.AccessTokens[tunnelproto.ScopeConnect]
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ws, resp, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolClientV2},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + tok}},
	})
	if err != nil {
		r.tb.Fatalf("dial client relay: %v (%v)", err, resp)
	}
	sc, chans, reqs, err := ssh.NewClientConn(ws, "relay", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		r.tb.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "bench client")
		}
	}()
	r.tb.Cleanup(func() { sc.Close() })
	return sc, tok
}

func openV2(sc ssh.Conn, tok string, port uint16) (ssh.Channel, error) {
	payload := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port), AccessToken: tok}.Marshal()
	ch, reqs, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, payload)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

// v2Conn is one forwarded connection to the echo port over V2.
func (r *benchRig) v2Conn() io.ReadWriteCloser {
	r.tb.Helper()
	r.startHost(ModeV2)
	sc, tok := r.v2Client()
	ch, err := openV2(sc, tok, r.echo)
	if err != nil {
		r.tb.Fatalf("open forwarded-tcpip: %v", err)
	}
	r.tb.Cleanup(func() { ch.Close() })
	return ch
}

// v1Conn is one forwarded connection to the echo port through the Go SDK
// client (V1 relay path, nested SSH) and a V1-forced host.
func (r *benchRig) v1Conn() io.ReadWriteCloser {
	r.tb.Helper()
	r.startHost(ModeV1)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := sdktest.Connect(r.tb, ctx, r.URL, r.APIKey, r.Tunnel)
	if err := sdktest.WaitForwarded(ctx, c, r.echo); err != nil {
		r.tb.Fatalf("WaitForForwardedPort: %v", err)
	}
	mine, theirs := net.Pipe()
	fctx, fcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.ConnectToForwardedPort(fctx, theirs, r.echo) }()
	r.tb.Cleanup(func() {
		mine.Close()
		fcancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	// One round trip, so the channel is open before the timed region.
	ping := make([]byte, pingSize)
	if _, err := mine.Write(ping); err != nil {
		r.tb.Fatalf("SDK forwarded connection: %v", err)
	}
	if _, err := io.ReadFull(mine, ping); err != nil {
		r.tb.Fatalf("SDK forwarded connection: %v", err)
	}
	return mine
}

// guard closes c if the benchmark runs past benchTimeout, so a stuck path
// fails instead of hanging.
func guard(b *testing.B, c io.Closer) {
	t := time.AfterFunc(benchTimeout, func() { c.Close() })
	b.Cleanup(func() { t.Stop() })
}

func benchThroughput(b *testing.B, c io.ReadWriteCloser) {
	guard(b, c)
	payload := randomBytes(benchBytes)
	buf := make([]byte, 256<<10)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		werr := make(chan error, 1)
		go func() { _, err := c.Write(payload); werr <- err }()
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(c, benchBytes), buf); err != nil {
			b.Fatalf("read back: %v", err)
		}
		if err := <-werr; err != nil {
			b.Fatalf("write: %v", err)
		}
	}
	b.StopTimer()
}

// benchRTT runs b.N ping-pongs and reports the p50 and p99 round trip.
func benchRTT(b *testing.B, c io.ReadWriteCloser) {
	guard(b, c)
	msg := randomBytes(pingSize)
	buf := make([]byte, pingSize)
	d := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			b.Fatalf("write: %v", err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatalf("read: %v", err)
		}
		d[i] = time.Since(start)
	}
	b.StopTimer()
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	b.ReportMetric(float64(percentile(d, 50))/1e3, "p50-µs")
	b.ReportMetric(float64(percentile(d, 99))/1e3, "p99-µs")
}

// percentile is the nearest-rank percentile of sorted d.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(d)))) - 1
	return d[max(0, min(i, len(d)-1))]
}

func BenchmarkDirectThroughput(b *testing.B) {
	benchThroughput(b, newBenchRig(b).directConn())
}

func BenchmarkV2Throughput(b *testing.B) {
	benchThroughput(b, newBenchRig(b).v2Conn())
}

func BenchmarkV1Throughput(b *testing.B) {
	benchThroughput(b, newBenchRig(b).v1Conn())
}

func BenchmarkDirectRTT(b *testing.B) {
	benchRTT(b, newBenchRig(b).directConn())
}

func BenchmarkV2RTT(b *testing.B) {
	benchRTT(b, newBenchRig(b).v2Conn())
}

func BenchmarkV1RTT(b *testing.B) {
	benchRTT(b, newBenchRig(b).v1Conn())
}

// BenchmarkIdleConnMemory opens idleConns forwarded V2 connections (each
// echoes once, so the host has dialed the echo server), leaves them idle
// and reports the live heap they add, per connection (B/conn), and the
// goroutine stacks (stack-B/conn).
//
// Everything runs in this one process, so the figure is the sum of all
// sides of a connection: relay-server's two bridged SSH channels and its
// splice, the tunnel host's channel, TCP dial and splice — and also the
// benchmark's own x/crypto client channel and the echo server's connection.
// It is an upper bound for relay + host together, not a split.
func BenchmarkIdleConnMemory(b *testing.B) {
	r := newBenchRig(b)
	r.startHost(ModeV2)
	sc, tok := r.v2Client()
	// Warm up: one connection, so lazily built state is not charged to the
	// idle ones.
	warm, err := openV2(sc, tok, r.echo)
	if err != nil {
		b.Fatal(err)
	}
	pingPong(b, warm)
	warm.Close()

	var heap, stack float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		g0 := runtime.NumGoroutine()
		before := memStats()
		chans := make([]ssh.Channel, 0, idleConns)
		for range idleConns {
			ch, err := openV2(sc, tok, r.echo)
			if err != nil {
				b.Fatalf("open forwarded-tcpip %d: %v", len(chans), err)
			}
			chans = append(chans, ch)
			pingPong(b, ch)
		}
		after := memStats()
		heap += float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / idleConns
		stack += float64(int64(after.StackInuse)-int64(before.StackInuse)) / idleConns
		for _, ch := range chans {
			ch.Close()
		}
		// Let both ends tear down before the next round's baseline.
		deadline := time.Now().Add(10 * time.Second)
		for runtime.NumGoroutine() > g0+5 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.StopTimer()
	b.ReportMetric(heap/float64(b.N), "B/conn")
	b.ReportMetric(stack/float64(b.N), "stack-B/conn")
}

func pingPong(b *testing.B, rw io.ReadWriter) {
	b.Helper()
	msg := []byte("idle?")
	buf := make([]byte, len(msg))
	if _, err := rw.Write(msg); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(rw, buf); err != nil {
		b.Fatal(err)
	}
	if string(buf) != string(msg) {
		b.Fatal(errors.New("echo mismatch"))
	}
}

// memStats reads the heap after two GCs, so only live memory counts.
func memStats() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// Web forwarding: GET of a webBody-byte response from an HTTP server,
// directly and through relay-server's web forwarding (path form, token in
// X-Tunnel-Authorization) to a V2 host, on one kept-alive connection.
const webBody = 16 << 20

func webServer(tb testing.TB) uint16 {
	body := make([]byte, webBody)
	for i := range body {
		body[i] = byte(i * 31)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { srv.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func benchGET(b *testing.B, url string, header http.Header) {
	client := &http.Client{Transport: &http.Transport{}, Timeout: benchTimeout}
	defer client.CloseIdleConnections()
	get := func() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header = header
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != webBody || resp.StatusCode != 200 {
			b.Fatalf("GET %s: %d, %d bytes, %v", url, resp.StatusCode, n, err)
		}
	}
	get() // warm the connection
	b.SetBytes(webBody)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		get()
	}
}

func BenchmarkWebDirectGET(b *testing.B) {
	port := webServer(b)
	benchGET(b, "http://127.0.0.1:"+strconv.Itoa(int(port))+"/", http.Header{})
}

func BenchmarkWebForwardGET(b *testing.B) {
	r := newBenchRig(b)
	port := webServer(b)
	r.startHost(ModeV2, port)
	_, tok := r.v2Client()
	benchGET(b, r.URL+"/tunnels/"+r.Tunnel+"/ports/"+strconv.Itoa(int(port))+"/",
		http.Header{"X-Tunnel-Authorization": {"tunnel " + tok}})
}
