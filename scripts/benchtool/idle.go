package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// measureIdle opens n idle connections through p (each echoed once) and
// records the RSS they add per connection, and what is left 3 s after
// they close.
func measureIdle(p *path, n int) error {
	s, err := idleRSS(p, n, 3*time.Second)
	if err != nil {
		return err
	}
	for role, b := range s.before {
		p.idle[role] = float64(s.open[role]-b) / float64(n)
		p.kept[role] = float64(s.closed[0][role]-b) / float64(n)
	}
	return nil
}

// idleSample is the RSS of a path's processes around n idle connections.
type idleSample struct {
	before, open map[string]int64 // settled, before opening; 1 s after all are open
	closed       []map[string]int64
	opened       time.Duration // the time to open them all
}

// idleRSS samples p's RSS before and after opening n idle connections,
// and at each of the times after closing them (counted from the close).
func idleRSS(p *path, n int, after ...time.Duration) (idleSample, error) {
	var s idleSample
	// A settled baseline: the processes just connected.
	time.Sleep(time.Second)
	var err error
	if s.before, err = p.rssNow(); err != nil {
		return s, err
	}
	start := time.Now()
	conns, err := openIdle(p, n)
	defer closeAll(conns)
	if err != nil {
		return s, err
	}
	s.opened = time.Since(start)
	time.Sleep(time.Second)
	if s.open, err = p.rssNow(); err != nil {
		return s, err
	}
	closeAll(conns)
	conns = nil
	var slept time.Duration
	for _, at := range after {
		time.Sleep(at - slept)
		slept = at
		m, err := p.rssNow()
		if err != nil {
			return s, err
		}
		s.closed = append(s.closed, m)
	}
	return s, nil
}

// openIdle opens n connections through p, each echoed once so that the
// whole path is set up, a few at a time.
func openIdle(p *path, n int) ([]net.Conn, error) {
	const workers = 8
	conns := make([]net.Conn, n)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil || i >= n
				mu.Unlock()
				if stop {
					return
				}
				c, err := openEcho(p.addr)
				if err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: idle connection %d: %w", p.name, i, err)
					}
					mu.Unlock()
					return
				}
				conns[i] = c
			}
		})
	}
	wg.Wait()
	return conns, first
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// nofile is the open file limit raiseNofile set at start, before any
// process is started, so that they inherit it; nofileErr is why it could
// not.
var (
	nofile    uint64
	nofileErr error
)

func init() {
	if os.Getenv(targetProcessEnv) != "" {
		os.Exit(serveTargetProcess())
	}
	n, err := idleBig()
	if err != nil || n == 0 {
		return
	}
	nofile, nofileErr = raiseNofile(uint64(n + 1024))
}

// targetProcessEnv makes the tool a target server process (for the
// 10000-connection figure: the target's sockets are not the tool's): it
// prints the port and serves until its stdin closes.
const targetProcessEnv = "WARREN_BENCHTOOL_TARGET"

func serveTargetProcess() int {
	t, err := startTarget(4 << 10)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("port %d\n", t.port())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// startTargetProcess starts this tool as a target server process.
func startTargetProcess() (port uint16, stop func(), err error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), targetProcessEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, nil, err
	}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	stop = func() { stdin.Close(); _ = cmd.Wait() }
	if _, err := fmt.Fscanf(out, "port %d\n", &port); err != nil {
		stop()
		return 0, nil, fmt.Errorf("target process: %w", err)
	}
	return port, stop, nil
}

// idleBig is BENCH_IDLE_BIG, default 10000.
func idleBig() (int64, error) {
	var n int64 = 10000
	err := envSize("BENCH_IDLE_BIG", &n)
	return n, err
}

// measureIdleBig holds BENCH_IDLE_BIG (default 10000; 0: off) idle
// connections open through a V2 ws path of its own (fresh relay-server,
// tunnel-host and tunnel-client, and a target server in a process of its
// own, so that this tool holds one socket per connection, not two) and
// prints the total RSS of the three then, and after they close. The open
// file limit is raised at start (init), before any process is started, so
// that they inherit it: to what the figure needs where the tool may
// (root), else to the hard limit (the Go runtime of the binaries also
// raises their soft limit to the hard one at start).
func measureIdleBig(ctx context.Context, w io.Writer, ps *procs, want map[string]bool) error {
	n, err := idleBig()
	if err != nil {
		return err
	}
	if n == 0 || !want["v2ws"] {
		return nil
	}
	if nofileErr != nil {
		return fmt.Errorf("raising the open file limit: %w", nofileErr)
	}
	if max := int64(nofile) - 1024; n > max {
		fprintf(w, "(the open file limit, %d, allows %d idle connections, not %d)\n", nofile, max, n)
		n = max
	}
	port, stopTarget, err := startTargetProcess()
	if err != nil {
		return err
	}
	defer stopTarget()
	r, err := ps.startRelay(ctx, "v2ws-big", relayOpts{})
	if err != nil {
		return err
	}
	h, err := ps.startHost(r, "v2", port, "")
	if err != nil {
		return err
	}
	if err := r.waitHost(ctx, h, port); err != nil {
		return err
	}
	c, addr, err := ps.startClient(ctx, r, "v2", port, false)
	if err != nil {
		return err
	}
	p := newPath("V2 ws", addr, r.p, h, c)
	defer func() {
		for _, pr := range p.procs {
			stopProc(pr)
		}
	}()
	for _, pr := range p.procs {
		if l, err := procNofile(pr.pid()); err == nil && l < uint64(n)+256 {
			fprintf(w, "(%s's open file limit is %d: too low for %d connections)\n", pr.role, l, n)
		}
	}
	// 10000 closes take a while to go through three processes on a busy
	// machine: the RSS 3 s after, and 10 s after.
	smp, err := idleRSS(p, int(n), 3*time.Second, 10*time.Second)
	if err != nil {
		return err
	}
	before, after, opened := smp.before, smp.open, smp.opened
	closed, closed10 := smp.closed[0], smp.closed[1]
	mib := func(m map[string]int64) (float64, float64, float64, float64) {
		r, h, c := float64(m["relay"])/1024, float64(m["host"])/1024, float64(m["client"])/1024
		return r, h, c, r + h + c
	}
	mr, mh, mc, mt := mib(after)
	fprintf(w, "%d idle V2 ws connections (fresh processes): relay %.1f + host %.1f + client %.1f = %.1f MiB (opened in %.1f s)\n", n, mr, mh, mc, mt, opened.Seconds())
	_, _, _, t0 := mib(before)
	fprintf(w, "  that is %.1f KiB per connection over the %.1f MiB before", (mt-t0)*1024/float64(n), t0)
	fprintf(w, "\n")
	for _, at := range []struct {
		s int
		m map[string]int64
	}{{3, closed}, {10, closed10}} {
		mr, mh, mc, mt = mib(at.m)
		fprintf(w, "  %2d s after they close: relay %.1f + host %.1f + client %.1f = %.1f MiB\n", at.s, mr, mh, mc, mt)
	}
	return nil
}

// raiseNofile raises this process's RLIMIT_NOFILE to at least want if it
// may (above the hard limit only as root), else to the hard limit, and
// returns the soft limit in effect.
func raiseNofile(want uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur >= want {
		return l.Cur, nil
	}
	if l.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want, nil
		}
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	return l.Cur, nil
}

// procNofile is the soft open file limit of pid.
func procNofile(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	var soft uint64
	for _, line := range strings.Split(string(b), "\n") {
		if _, err := fmt.Sscanf(line, "Max open files %d", &soft); err == nil {
			return soft, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/limits: no Max open files", pid)
}
