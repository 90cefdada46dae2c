package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "echo":
		err = echo()
	case "run":
		err = run(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tcpbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: tcpbench echo | tcpbench run [-bytes N] [-pings N] [-count N] name=host:port ...")
	os.Exit(2)
}

// echo serves a TCP echo on a free loopback port, printed on stdout,
// until SIGINT or SIGTERM.
func echo() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

type target struct{ name, addr string }

// run measures each target count times, round robin (so drift on a shared
// machine spreads over all of them), and prints one line per target:
// name, median MB/s, median p50 µs, median p99 µs.
func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	size := fs.Int("bytes", 16<<20, "bytes echoed per throughput round")
	pings := fs.Int("pings", 2000, "64-byte round trips per RTT round")
	count := fs.Int("count", 3, "rounds per target")
	fs.Parse(args)
	var ts []target
	for _, a := range fs.Args() {
		name, addr, ok := strings.Cut(a, "=")
		if !ok || name == "" || addr == "" {
			return fmt.Errorf("target %q: want name=host:port", a)
		}
		ts = append(ts, target{name, addr})
	}
	if len(ts) == 0 {
		usage()
	}
	payload := make([]byte, *size)
	rand.Read(payload)
	mbs := make([][]float64, len(ts))
	p50 := make([][]float64, len(ts))
	p99 := make([][]float64, len(ts))
	for range *count {
		for i, t := range ts {
			r, err := throughput(t.addr, payload)
			if err != nil {
				return fmt.Errorf("%s throughput: %w", t.name, err)
			}
			a, b, err := rtt(t.addr, *pings)
			if err != nil {
				return fmt.Errorf("%s RTT: %w", t.name, err)
			}
			mbs[i], p50[i], p99[i] = append(mbs[i], r), append(p50[i], a), append(p99[i], b)
		}
	}
	for i, t := range ts {
		fmt.Printf("%s %.1f %.0f %.0f\n", t.name, median(mbs[i]), median(p50[i]), median(p99[i]))
	}
	return nil
}

// throughput echoes payload once over a new connection and returns MB/s
// of payload (written and read back concurrently).
func throughput(addr string, payload []byte) (float64, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	start := time.Now()
	werr := make(chan error, 1)
	go func() { _, err := c.Write(payload); werr <- err }()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, io.LimitReader(c, int64(len(payload))), make([]byte, 256<<10)); err != nil {
		return 0, err
	}
	d := time.Since(start)
	if err := <-werr; err != nil {
		return 0, err
	}
	if want := sha256.Sum256(payload); !bytes.Equal(h.Sum(nil), want[:]) {
		return 0, errors.New("echoed bytes differ")
	}
	return float64(len(payload)) / d.Seconds() / 1e6, nil
}

// rtt does n 64-byte round trips over a new connection and returns the
// p50 and p99 in µs.
func rtt(addr string, n int) (float64, float64, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	msg, buf := make([]byte, 64), make([]byte, 64)
	rand.Read(msg)
	// One round first: the tunnel opens its channel on the first bytes.
	d := make([]float64, 0, n)
	for i := -1; i < n; i++ {
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return 0, 0, err
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return 0, 0, err
		}
		if i >= 0 {
			d = append(d, float64(time.Since(start).Nanoseconds())/1e3)
		}
		if !bytes.Equal(msg, buf) {
			return 0, 0, errors.New("echoed bytes differ")
		}
	}
	slices.Sort(d)
	return d[len(d)/2], d[len(d)*99/100], nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
