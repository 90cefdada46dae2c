package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is read from the environment; every value has a default that
// keeps the whole run to a few minutes on a 2-core machine.
type config struct {
	bin      string        // directory of the built binaries (BIN)
	binB     string        // BENCH_BIN_B: a second build, run beside bin's on every client path
	bytes    int64         // BENCH_BYTES: per single-stream run, and per 8-stream run in total
	streams  int           // BENCH_STREAMS
	rounds   int           // BENCH_ROUNDS: interleaved rounds; medians are printed
	buf      int           // BENCH_BUF: read/write buffer of the tool on every path
	rtt      int           // BENCH_RTT: ping-pongs per RTT run
	newConns int           // BENCH_NEWCONNS: connections per new-connection latency run
	idle     int           // BENCH_IDLE: idle connections for the RSS figure
	webBytes int64         // BENCH_WEB_BYTES: body of the web forwarding GET
	paths    string        // BENCH_PATHS: comma list of v2ws,v2wss,v2e2e,v1,raw,proxy,web (default all)
	hold     time.Duration // BENCH_HOLD: keep the processes this long after the report
}

func loadConfig() (config, error) {
	c := config{
		bin: envStr("BIN", "bin"), bytes: 256 << 20, streams: 8, rounds: 3, buf: 64 << 10,
		rtt: 2000, newConns: 200, idle: 1000, webBytes: 1 << 30,
		paths: envStr("BENCH_PATHS", "v2ws,v2wss,v2e2e,v1,raw,proxy,web"),
	}
	var err error
	for _, v := range []struct {
		name string
		dst  *int64
	}{{"BENCH_BYTES", &c.bytes}, {"BENCH_WEB_BYTES", &c.webBytes}} {
		if err = envSize(v.name, v.dst); err != nil {
			return c, err
		}
	}
	for _, v := range []struct {
		name string
		dst  *int
	}{{"BENCH_STREAMS", &c.streams}, {"BENCH_ROUNDS", &c.rounds}, {"BENCH_RTT", &c.rtt},
		{"BENCH_NEWCONNS", &c.newConns}, {"BENCH_IDLE", &c.idle}} {
		var n int64 = int64(*v.dst)
		if err = envSize(v.name, &n); err != nil {
			return c, err
		}
		*v.dst = int(n)
	}
	b := int64(c.buf)
	if err = envSize("BENCH_BUF", &b); err != nil {
		return c, err
	}
	c.buf = int(b)
	if v := os.Getenv("BENCH_HOLD"); v != "" {
		if c.hold, err = time.ParseDuration(v); err != nil {
			return c, fmt.Errorf("benchtool: BENCH_HOLD=%q: %w", v, err)
		}
	}
	if c.bytes < int64(c.streams) || c.streams < 1 || c.rounds < 1 || c.buf < 1 || c.rtt < 1 || c.newConns < 1 {
		return c, errors.New("benchtool: BENCH_BYTES, BENCH_STREAMS, BENCH_ROUNDS, BENCH_BUF, BENCH_RTT and BENCH_NEWCONNS must be positive")
	}
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return c, err
	}
	if v := os.Getenv("BENCH_BIN_B"); v != "" {
		if c.binB, err = filepath.Abs(v); err != nil {
			return c, err
		}
	}
	return c, nil
}

func envStr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// envSize parses a count with an optional K, M or G suffix (powers of 2).
func envSize(name string, dst *int64) error {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return nil
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "K"):
		mult, v = 1<<10, strings.TrimSuffix(v, "K")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("benchtool: %s=%q: want a non-negative count, optionally with K, M or G", name, os.Getenv(name))
	}
	*dst = n * mult
	return nil
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == proxyArg {
		// One hop of the RTT floor reference (proxy.go); it serves until
		// killed.
		fmt.Fprintln(os.Stderr, "benchtool proxy:", runProxy(os.Args[2]))
		os.Exit(1)
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	interrupt = ctx
	if err := run(ctx, cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// percentile is the nearest-rank percentile of d (sorted in place).
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(float64(len(d))*p/100+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

func fprintf(w io.Writer, format string, args ...any) { _, _ = fmt.Fprintf(w, format, args...) }
