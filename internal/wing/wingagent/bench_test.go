package wingagent

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// benchBytes is how much PTY output one throughput iteration moves.
const benchBytes = 100 << 20

var throughputCmd = "head -c " + strconv.Itoa(benchBytes) + " /dev/zero"

// countWriter counts bytes and signals when a byte arrives.
type countWriter struct {
	mu  sync.Mutex
	n   int64
	buf bytes.Buffer
	ch  chan struct{}
}

func (w *countWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.n += int64(len(p))
	if w.ch != nil {
		w.buf.Write(p)
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	w.mu.Unlock()
	return len(p), nil
}

func directPTY(b *testing.B, argv ...string) (int64, time.Duration) {
	start := time.Now()
	cmd := exec.Command(argv[0], argv[1:]...)
	f, err := pty.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, f) // EIO at the end
	cmd.Wait()
	f.Close()
	return n, time.Since(start)
}

// BenchmarkPTYThroughput: 100 MiB of PTY output (head -c from /dev/zero)
// through wing → relay hub → wing attach's client (decrypting), against the
// same command on a local PTY. Reports both MB/s and the ratio.
func BenchmarkPTYThroughput(b *testing.B) {
	url := testRelay(b)
	startAgent(b, url, nil)
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	var wingDur, directDur time.Duration
	var wingN, directN int64
	for b.Loop() {
		n, d := directPTY(b, "/bin/sh", "-c", throughputCmd)
		directN += n
		directDur += d

		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		s, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: throughputCmd})
		if err != nil {
			b.Fatal(err)
		}
		w := &countWriter{}
		code, err := s.Run(ctx, w, nil, 0)
		cancel()
		s.Close()
		if err != nil || code != 0 {
			b.Fatalf("session: %d %v", code, err)
		}
		wingDur += time.Since(start)
		wingN += w.n
	}
	if wingN < directN*9/10 {
		b.Fatalf("wing delivered %d bytes, direct %d", wingN, directN)
	}
	wing := float64(wingN) / 1e6 / wingDur.Seconds()
	direct := float64(directN) / 1e6 / directDur.Seconds()
	b.ReportMetric(wing, "wing-MB/s")
	b.ReportMetric(direct, "direct-MB/s")
	b.ReportMetric(wing/direct, "x-direct")
}

// BenchmarkKeystrokeEcho: one keystroke to a remote cat on a PTY and its
// echo back, through the relay hub with E2E crypto on both legs, against
// the same round trip on a local PTY. Reports medians and the ratio.
func BenchmarkKeystrokeEcho(b *testing.B) {
	const rounds = 200
	url := testRelay(b)
	startAgent(b, url, nil)
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	var wingRTT, directRTT []time.Duration
	for b.Loop() {
		// direct
		cmd := exec.Command("cat")
		f, err := pty.Start(cmd)
		if err != nil {
			b.Fatal(err)
		}
		one := make([]byte, 64)
		for range rounds {
			t0 := time.Now()
			f.Write([]byte("x"))
			if _, err := f.Read(one); err != nil {
				b.Fatal(err)
			}
			directRTT = append(directRTT, time.Since(t0))
		}
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()

		// through the relay
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: "exec cat"})
		if err != nil {
			b.Fatal(err)
		}
		w := &countWriter{ch: make(chan struct{}, 1)}
		done := make(chan struct{})
		go func() { s.Run(ctx, w, nil, 0); close(done) }()
		for s.Input(ctx, nil) != nil { // wait for pty.started
			time.Sleep(time.Millisecond)
		}
		for range rounds {
			w.mu.Lock()
			before := w.n
			w.mu.Unlock()
			t0 := time.Now()
			if err := s.Input(ctx, []byte("x")); err != nil {
				b.Fatal(err)
			}
			for {
				<-w.ch
				w.mu.Lock()
				got := w.n > before
				w.mu.Unlock()
				if got {
					break
				}
			}
			wingRTT = append(wingRTT, time.Since(t0))
		}
		s.Kill(ctx)
		<-done
		cancel()
		s.Close()
	}
	med := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds())
	}
	w, d := med(wingRTT), med(directRTT)
	b.ReportMetric(w, "wing-p50-µs")
	b.ReportMetric(d, "direct-p50-µs")
	b.ReportMetric(w/max(d, 1), "x-direct")
}
