package wingbench

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// relay returns a client of the relay the script started, and the wing id.
func relay(b *testing.B) (*wingclient.Client, string) {
	url, tok, wing := os.Getenv("WARREN_BENCH_RELAY"), os.Getenv("WARREN_BENCH_USER_TOKEN"), os.Getenv("WARREN_BENCH_WING")
	if url == "" || tok == "" || wing == "" {
		b.Skip("run by scripts/bench.sh: WARREN_BENCH_RELAY, WARREN_BENCH_USER_TOKEN and WARREN_BENCH_WING are not set")
	}
	// Its own HTTP client, whose idle connections (GET /api/app/wings for
	// --command) are closed after the benchmark: goleak checks for them.
	hc := &http.Client{}
	b.Cleanup(hc.CloseIdleConnections)
	// The script's wing is new to this client: trust it (no known_wings).
	return &wingclient.Client{RelayURL: url, Token: tok, HTTPClient: hc}, wing
}

// outputBytes is what one throughput iteration moves.
const outputBytes = 100 << 20

var outputCmd = "head -c " + strconv.Itoa(outputBytes) + " /dev/zero"

type counter struct {
	mu sync.Mutex
	n  int64
	ch chan struct{}
}

func (c *counter) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.n += int64(len(p))
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (c *counter) count() int64 { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// localOutput runs cmd on a local PTY and drains it.
func localOutput(b *testing.B, cmdline string) (int64, time.Duration) {
	start := time.Now()
	cmd := exec.Command("/bin/sh", "-c", cmdline)
	f, err := pty.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, f) // EIO at the end
	cmd.Wait()
	f.Close()
	return n, time.Since(start)
}

// BenchmarkRelayOutput: 100 MiB of terminal output (head -c /dev/zero on
// the wing's PTY) through wing serve → relay-server → the client,
// E2E-decrypted, against the same command on a local PTY.
func BenchmarkRelayOutput(b *testing.B) {
	c, wing := relay(b)
	var relayDur, localDur time.Duration
	var relayN, localN int64
	for b.Loop() {
		n, d := localOutput(b, outputCmd)
		localN, localDur = localN+n, localDur+d

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		s, err := c.Open(ctx, wingclient.SessionOptions{WingID: wing, Command: outputCmd})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		w := &counter{ch: make(chan struct{}, 1)}
		code, err := s.Run(ctx, w, nil, 0)
		cancel()
		s.Close()
		if err != nil || code != 0 {
			b.Fatalf("session: exit %d, %v", code, err)
		}
		relayDur += time.Since(start)
		relayN += w.count()
	}
	if relayN < localN*9/10 {
		b.Fatalf("the relay delivered %d bytes, the local PTY %d", relayN, localN)
	}
	r := float64(relayN) / 1e6 / relayDur.Seconds()
	l := float64(localN) / 1e6 / localDur.Seconds()
	b.ReportMetric(r, "relay-MB/s")
	b.ReportMetric(l, "local-MB/s")
	b.ReportMetric(r/l, "x-local")
}

func percentile(d []time.Duration, p float64) float64 {
	slices.Sort(d)
	i := int(float64(len(d)-1) * p)
	return float64(d[i].Nanoseconds()) / 1e3
}

// BenchmarkRelayKeystroke: one key to a remote cat and its echo back
// through relay-server (both legs E2E-encrypted), against the same round
// trip on a local PTY; p50 and p99 of each.
func BenchmarkRelayKeystroke(b *testing.B) {
	const rounds = 500
	c, wing := relay(b)
	var relayRTT, localRTT []time.Duration
	for b.Loop() {
		cmd := exec.Command("cat")
		f, err := pty.Start(cmd)
		if err != nil {
			b.Fatal(err)
		}
		buf := make([]byte, 64)
		for range rounds {
			t0 := time.Now()
			f.Write([]byte("x"))
			if _, err := f.Read(buf); err != nil {
				b.Fatal(err)
			}
			localRTT = append(localRTT, time.Since(t0))
		}
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s, err := c.Open(ctx, wingclient.SessionOptions{WingID: wing, Command: "exec cat"})
		if err != nil {
			cancel()
			b.Fatal(err)
		}
		w := &counter{ch: make(chan struct{}, 1)}
		done := make(chan struct{})
		go func() { s.Run(ctx, w, nil, 0); close(done) }()
		for s.Input(ctx, nil) != nil { // until pty.started
			time.Sleep(time.Millisecond)
		}
		for range rounds {
			before := w.count()
			t0 := time.Now()
			if err := s.Input(ctx, []byte("x")); err != nil {
				b.Fatal(err)
			}
			for w.count() == before {
				select {
				case <-w.ch:
				case <-ctx.Done():
					b.Fatal("no echo")
				}
			}
			relayRTT = append(relayRTT, time.Since(t0))
		}
		s.Kill(ctx)
		<-done
		cancel()
		s.Close()
	}
	rp50, rp99 := percentile(relayRTT, 0.5), percentile(relayRTT, 0.99)
	lp50, lp99 := percentile(localRTT, 0.5), percentile(localRTT, 0.99)
	b.ReportMetric(rp50, "relay-p50-µs")
	b.ReportMetric(rp99, "relay-p99-µs")
	b.ReportMetric(lp50, "local-p50-µs")
	b.ReportMetric(lp99, "local-p99-µs")
	b.ReportMetric(rp50/max(lp50, 1), "p50-x-local")
}
