package wingagent

import (
	"context"
	"os/exec"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// Direct-path benchmarks (docs/protocols/wing.md §2.11), beside the relay
// path's in bench_test.go: the same command and keystrokes, with the
// session moved onto a DataChannel on loopback first.

func directSession(b *testing.B, c *wingclient.Client, cmd string, out *countWriter) (*wingclient.Session, context.CancelFunc, chan struct{}) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	s, err := c.Open(ctx, wingclient.SessionOptions{WingID: "box", Command: cmd,
		Direct: wingclient.DirectOptions{Mode: wingclient.DirectRequire, Networks: loopback}})
	if err != nil {
		b.Fatal(err)
	}
	ev := newEvents()
	done := make(chan struct{})
	go func() {
		// A killed cat exits 129 (SIGHUP): only errors count.
		if _, err := s.Run(ctx, out, ev.on, 0); err != nil {
			b.Errorf("session: %v", err)
		}
		close(done)
	}()
	ev.wait(b, "direct", 1, time.Minute)
	return s, cancel, done
}

// BenchmarkDirectPTYThroughput: 100 MiB of PTY output over the direct
// channel (decrypted by the client), against a local PTY.
func BenchmarkDirectPTYThroughput(b *testing.B) {
	url := testRelay(b)
	startAgent(b, url, func(c *Config) { c.DirectNetworks = loopback })
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	var wingDur, directDur, wingCPU, directCPU time.Duration
	var wingN, directN int64
	for b.Loop() {
		cpu0 := cpuTime()
		n, d := directPTY(b, "/bin/sh", "-c", throughputCmd)
		directCPU += cpuTime() - cpu0
		directN += n
		directDur += d

		w := &countWriter{}
		s, cancel, done := directSession(b, c, "stty -echo; read go; "+throughputCmd, w)
		start, cpu0 := time.Now(), cpuTime()
		s.Input(context.Background(), []byte("go\n"))
		<-done
		wingDur += time.Since(start)
		wingCPU += cpuTime() - cpu0
		cancel()
		s.Close()
		wingN += w.n
	}
	if wingN < directN*9/10 {
		b.Fatalf("the direct path delivered %d bytes, a local PTY %d", wingN, directN)
	}
	wing := float64(wingN) / 1e6 / wingDur.Seconds()
	direct := float64(directN) / 1e6 / directDur.Seconds()
	b.ReportMetric(wing, "p2p-MB/s")
	b.ReportMetric(direct, "direct-MB/s")
	b.ReportMetric(wing/direct, "x-direct")
	// CPU time per MB, this process and its children (the PTY's writer
	// and, for the direct path, both ends of the channel): on a loaded
	// machine a steadier measure than MB/s.
	b.ReportMetric(float64(wingCPU.Milliseconds())/(float64(wingN)/1e6), "p2p-cpu-ms/MB")
	b.ReportMetric(float64(directCPU.Milliseconds())/(float64(directN)/1e6), "direct-cpu-ms/MB")
}

// cpuTime is the CPU time of this process and its children waited for.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids)
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + kids.Utime.Nano() + kids.Stime.Nano())
}

// BenchmarkDirectKeystrokeEcho: keystroke round trips to a remote cat
// over the direct channel, against a local PTY; p50 and p99.
func BenchmarkDirectKeystrokeEcho(b *testing.B) {
	const rounds = 500
	url := testRelay(b)
	startAgent(b, url, func(c *Config) { c.DirectNetworks = loopback })
	c := &wingclient.Client{RelayURL: url, Token: "user:alice"}
	var wingRTT, localRTT []time.Duration
	for b.Loop() {
		localRTT = append(localRTT, localEcho(b, rounds)...)

		w := &countWriter{ch: make(chan struct{}, 1)}
		s, cancel, done := directSession(b, c, "exec cat", w)
		ctx := context.Background()
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
	pct := func(d []time.Duration, p int) float64 {
		slices.Sort(d)
		return float64(d[len(d)*p/100].Microseconds())
	}
	b.ReportMetric(pct(wingRTT, 50), "p2p-p50-µs")
	b.ReportMetric(pct(wingRTT, 99), "p2p-p99-µs")
	b.ReportMetric(pct(localRTT, 50), "direct-p50-µs")
	b.ReportMetric(pct(localRTT, 99), "direct-p99-µs")
	b.ReportMetric(pct(wingRTT, 50)/max(pct(localRTT, 50), 1), "x-direct")
}

// localEcho times keystroke round trips to cat on a local PTY.
func localEcho(b *testing.B, rounds int) []time.Duration {
	cmd := exec.Command("cat")
	f, err := pty.Start(cmd)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait(); f.Close() }()
	one := make([]byte, 64)
	var out []time.Duration
	for range rounds {
		t0 := time.Now()
		f.Write([]byte("x"))
		if _, err := f.Read(one); err != nil {
			b.Fatal(err)
		}
		out = append(out, time.Since(t0))
	}
	return out
}
