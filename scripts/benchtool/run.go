package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/webforward"
)

var roles = []string{"relay", "host", "client", "proxy1", "proxy2", "proxy3"}

// path is one way to reach the target, with what was measured on it.
type path struct {
	name  string
	addr  string  // where the tool connects
	procs []*proc // the path's processes; none for direct
	// ref marks a reference that is not warren (the plain proxy chains):
	// not in the idle-connection and RSS figures.
	ref bool
	e2e *e2eCheck // set on a path whose streams must be E2E-encrypted

	single, multi []float64            // MB/s per round
	cpu           map[string][]float64 // CPU-s per GiB per round, by role
	rtt50, rtt99  []float64            // µs per round
	nc50, nc99    []float64            // µs per round
	idle          map[string]float64   // KiB per idle connection, by role
	kept          map[string]float64   // KiB per connection still held 3 s after close
}

func newPath(name, addr string, ps ...*proc) *path {
	return &path{name: name, addr: addr, procs: ps, cpu: map[string][]float64{}, idle: map[string]float64{}, kept: map[string]float64{}}
}

func (p *path) cpuNow() (map[string]float64, error) {
	out := map[string]float64{}
	for _, pr := range p.procs {
		s, err := cpuSeconds(pr.pid())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", p.name, pr.role, err)
		}
		out[pr.role] += s
	}
	return out, nil
}

func (p *path) rssNow() (map[string]int64, error) {
	out := map[string]int64{}
	for _, pr := range p.procs {
		s, err := rssKiB(pr.pid())
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", p.name, pr.role, err)
		}
		out[pr.role] += s
	}
	return out, nil
}

func run(ctx context.Context, cfg config, w io.Writer) error {
	dir, err := os.MkdirTemp("", "warren-benchtool-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ps := &procs{bin: cfg.bin, dir: dir}
	defer ps.stopAll()

	tgt, err := startTarget(cfg.buf)
	if err != nil {
		return err
	}
	defer tgt.close()
	web, webPort, err := startWebTarget(cfg.webBytes, cfg.buf)
	if err != nil {
		return err
	}
	defer web.Close()

	want := map[string]bool{}
	for _, k := range strings.Split(cfg.paths, ",") {
		want[strings.TrimSpace(k)] = true
	}
	fprintf(w, "setting up (fresh relay-server, tunnel-host and tunnel-client per path)...\n")
	direct := newPath("direct", tgt.addr())
	paths := []*path{direct}
	type clientPath struct {
		key, name, mode string
		tls, e2e        bool
	}
	// With BENCH_BIN_B, each client path runs a second time with the
	// binaries there ("V2 ws B"), in the same interleaved rounds: an A/B
	// comparison of two builds that the machine's drift affects alike.
	builds := []struct{ bin, tag string }{{cfg.bin, ""}}
	if cfg.binB != "" {
		builds = append(builds, struct{ bin, tag string }{cfg.binB, " B"})
	}
	for _, cp := range []clientPath{{"v2ws", "V2 ws", "v2", false, false}, {"v2wss", "V2 wss", "v2", true, false},
		{"v2e2e", "V2 e2e", "v2", false, true}, {"v1", "V1", "v1", false, false}} {
		if !want[cp.key] {
			continue
		}
		for _, b := range builds {
			ps.bin = b.bin
			p, err := startClientPath(ctx, ps, tgt, cp.key+strings.ToLower(strings.TrimSpace(b.tag)), cp.name+b.tag, cp.mode, cp.tls, cp.e2e)
			if err != nil {
				return err
			}
			paths = append(paths, p)
		}
	}
	for _, b := range builds {
		if !want["raw"] {
			break
		}
		ps.bin = b.bin
		r, err := ps.startRelay(ctx, "raw"+strings.ToLower(strings.TrimSpace(b.tag)), relayOpts{exposePort: tgt.port()})
		if err != nil {
			return err
		}
		h, err := ps.startHost(r, "v2", tgt.port(), "")
		if err != nil {
			return err
		}
		if err := waitReachable(ctx, r.expose); err != nil {
			return fmt.Errorf("raw TCP exposure: %w\nrelay output:\n%s", err, tail(r.p.out.String(), 2000))
		}
		paths = append(paths, newPath("raw TCP"+b.tag, r.expose, r.p, h))
	}
	ps.bin = cfg.bin
	if want["proxy"] {
		for _, n := range []int{2, 3} {
			chain, addr, err := ps.startProxyChain(ctx, n, tgt.addr())
			if err != nil {
				return err
			}
			p := newPath(fmt.Sprintf("plain Go proxy x%d", n), addr, chain...)
			p.ref = true
			paths = append(paths, p)
		}
	}
	var webPath *path
	var webRelay *relay
	if want["web"] {
		r, err := ps.startRelay(ctx, "web", relayOpts{})
		if err != nil {
			return err
		}
		h, err := ps.startHost(r, "v2", webPort, "")
		if err != nil {
			return err
		}
		webPath, webRelay = newPath("web", "", r.p, h), r
	}

	fprintf(w, "\n== idle connections: %d per path, opened on fresh processes, each echoed once\n", cfg.idle)
	fprintf(w, "%-9s %28s %28s\n", "path", "KiB/conn relay/host/client", "KiB/conn kept 3 s after close")
	for _, p := range paths[1:] {
		if cfg.idle == 0 {
			break
		}
		if p.ref {
			continue
		}
		if err := measureIdle(p, cfg.idle); err != nil {
			return err
		}
		fprintf(w, "%-9s %28s %28s\n", p.name, splitKiB(p, p.idle), splitKiB(p, p.kept))
	}
	if err := measureIdleBig(ctx, w, ps, want); err != nil {
		return err
	}

	for round := 1; round <= cfg.rounds; round++ {
		fprintf(w, "round %d/%d...\n", round, cfg.rounds)
		for _, p := range paths {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := measureRound(p, cfg); err != nil {
				return err
			}
		}
	}
	var webDirect, webFwd []float64
	var webCPU map[string][]float64
	if webPath != nil {
		webDirect, webFwd, webCPU, err = measureWeb(ctx, cfg, webPath, webRelay, webPort)
		if err != nil {
			return err
		}
	}

	// After every stream of the run: were they all E2E-encrypted?
	var e2eLines []string
	for _, p := range paths {
		if p.e2e != nil {
			line, err := p.e2e.verify(ctx, p.name)
			if err != nil {
				return err
			}
			e2eLines = append(e2eLines, line)
		}
	}

	report(w, cfg, paths, direct)
	for _, l := range e2eLines {
		fprintf(w, "%s\n", l)
	}
	reportFloor(w, paths, direct)
	if webPath != nil {
		d, f := median(webDirect), median(webFwd)
		fprintf(w, "\n== web forwarding: %s GET through relay-server's path form to tunnel-host vs the same GET direct (median of %d)\n", size(cfg.webBytes), cfg.rounds)
		fprintf(w, "web GET: direct %.0f MB/s, forwarded %.0f MB/s (%.2f× direct), CPU-s/GiB relay %.2f + host %.2f = %.2f\n",
			d, f, f/d, median(webCPU["relay"]), median(webCPU["host"]), median(webCPU["relay"])+median(webCPU["host"]))
		paths = append(paths, webPath)
	}

	fprintf(w, "\n== RSS after the bench (MiB)\n")
	for _, p := range paths[1:] {
		if p.ref {
			continue
		}
		rss, err := p.rssNow()
		if err != nil {
			return err
		}
		var parts []string
		for _, role := range roles {
			if v, ok := rss[role]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f", role, float64(v)/1024))
			}
		}
		fprintf(w, "%-9s %s\n", p.name, strings.Join(parts, ", "))
	}
	if cfg.hold > 0 {
		// For a look at the processes (a profiler, /proc) before they stop.
		fprintf(w, "holding the processes for %s (BENCH_HOLD)\n", cfg.hold)
		select {
		case <-time.After(cfg.hold):
		case <-ctx.Done():
		}
	}
	return nil
}

func measureRound(p *path, cfg config) error {
	c0, err := p.cpuNow()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := download(p.addr, cfg.bytes, cfg.buf); err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.single = append(p.single, mbs(cfg.bytes, time.Since(start)))
	d, err := downloadParallel(p.addr, cfg.bytes, cfg.streams, cfg.buf)
	if err != nil {
		return fmt.Errorf("%s: %w", p.name, err)
	}
	p.multi = append(p.multi, mbs(cfg.bytes, d))
	c1, err := p.cpuNow()
	if err != nil {
		return err
	}
	gib := float64(2*cfg.bytes) / (1 << 30)
	for role, s := range c1 {
		p.cpu[role] = append(p.cpu[role], (s-c0[role])/gib)
	}

	rs, err := rtt(p.addr, cfg.rtt)
	if err != nil {
		return fmt.Errorf("%s: rtt: %w", p.name, err)
	}
	p.rtt50 = append(p.rtt50, us(percentile(rs, 50)))
	p.rtt99 = append(p.rtt99, us(percentile(rs, 99)))
	ns, err := newConns(p.addr, cfg.newConns)
	if err != nil {
		return fmt.Errorf("%s: new connections: %w", p.name, err)
	}
	p.nc50 = append(p.nc50, us(percentile(ns, 50)))
	p.nc99 = append(p.nc99, us(percentile(ns, 99)))
	return nil
}

func measureWeb(ctx context.Context, cfg config, p *path, r *relay, port uint16) (direct, fwd []float64, cpu map[string][]float64, err error) {
	hdr := http.Header{webforward.HeaderTunnelAuthorization: {"tunnel " + r.connTok}}
	fwdURL := r.url + "/tunnels/" + r.tunnel + "/ports/" + strconv.Itoa(int(port)) + "/"
	directURL := "http://127.0.0.1:" + strconv.Itoa(int(port)) + "/"
	// One client each, kept alive across rounds, like a browser.
	dc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer dc.CloseIdleConnections()
	defer fc.CloseIdleConnections()
	if err := waitGET(ctx, fc, fwdURL, hdr); err != nil {
		return nil, nil, nil, fmt.Errorf("%w\nhost output:\n%s", err, tail(p.procs[1].out.String(), 2000))
	}
	cpu = map[string][]float64{}
	gib := float64(cfg.webBytes) / (1 << 30)
	for range cfg.rounds {
		start := time.Now()
		if err := get(dc, directURL, http.Header{}, cfg.webBytes, cfg.buf); err != nil {
			return nil, nil, nil, err
		}
		direct = append(direct, mbs(cfg.webBytes, time.Since(start)))
		c0, err := p.cpuNow()
		if err != nil {
			return nil, nil, nil, err
		}
		start = time.Now()
		if err := get(fc, fwdURL, hdr, cfg.webBytes, cfg.buf); err != nil {
			return nil, nil, nil, err
		}
		fwd = append(fwd, mbs(cfg.webBytes, time.Since(start)))
		c1, err := p.cpuNow()
		if err != nil {
			return nil, nil, nil, err
		}
		for role, s := range c1 {
			cpu[role] = append(cpu[role], (s-c0[role])/gib)
		}
	}
	return direct, fwd, cpu, nil
}

func report(w io.Writer, cfg config, paths []*path, direct *path) {
	fprintf(w, "\n== port tunnels: %s per throughput run (1 stream; %d streams sharing it), %s buffers, median of %d interleaved rounds; GOMAXPROCS here %d\n",
		size(cfg.bytes), cfg.streams, size(int64(cfg.buf)), cfg.rounds, runtime.GOMAXPROCS(0))
	const row = "%-17s %15s %15s %28s %15s %20s\n"
	fprintf(w, row, "path", "1 stream MB/s", fmt.Sprintf("%d streams MB/s", cfg.streams),
		"CPU-s/GiB relay+host+client", "RTT p50/p99 µs", "new conn p50/p99 µs")
	d1, d8 := median(direct.single), median(direct.multi)
	for _, p := range paths {
		s1, s8 := median(p.single), median(p.multi)
		cpu := "—"
		if len(p.procs) > 0 {
			var parts []string
			total := 0.0
			for _, role := range roles {
				if v, ok := p.cpu[role]; ok {
					m := median(v)
					total += m
					parts = append(parts, fmt.Sprintf("%.2f", m))
				}
			}
			cpu = fmt.Sprintf("%s = %.2f", strings.Join(parts, "+"), total)
		}
		fprintf(w, row, p.name,
			fmt.Sprintf("%.0f (%.2f×)", s1, s1/d1), fmt.Sprintf("%.0f (%.2f×)", s8, s8/d8), cpu,
			fmt.Sprintf("%.0f/%.0f", median(p.rtt50), median(p.rtt99)),
			fmt.Sprintf("%.0f/%.0f", median(p.nc50), median(p.nc99)))
	}
	for _, p := range paths {
		if p.ref {
			fprintf(w, "(plain Go proxy rows: a reference, not warren; their CPU column is per proxy process, first hop first)\n")
			break
		}
	}
}

// reportFloor prints each warren path's RTT p50 over direct and over the
// plain proxy chain of as many processes (its floor on this machine: the
// wakeup of every process on the way, both ways).
func reportFloor(w io.Writer, paths []*path, direct *path) {
	floors := map[int]*path{}
	for _, p := range paths {
		if p.ref {
			floors[len(p.procs)] = p
		}
	}
	d := median(direct.rtt50)
	if len(floors) > 0 {
		fprintf(w, "\n== RTT floor: a plain Go proxy (accept, dial, two goroutines copying) per OS process, chained; measured in the same rounds\n")
		var parts []string
		for _, n := range []int{2, 3} {
			if f, ok := floors[n]; ok {
				parts = append(parts, fmt.Sprintf("x%d +%.0f µs (%.0f µs per process)", n, median(f.rtt50)-d, (median(f.rtt50)-d)/float64(n)))
			}
		}
		fprintf(w, "plain Go proxy RTT p50 over direct: %s\n", strings.Join(parts, ", "))
	}
	const row = "%-9s %5s %12s %18s %24s %15s\n"
	fprintf(w, row, "path", "procs", "RTT p50 µs", "added over direct", "floor: proxy chain µs", "over the floor")
	for _, p := range paths[1:] {
		if p.ref {
			continue
		}
		n := len(p.procs)
		r := median(p.rtt50)
		floor, over := "—", "—"
		if f, ok := floors[n]; ok {
			floor = fmt.Sprintf("%.0f (x%d)", median(f.rtt50), n)
			over = fmt.Sprintf("%+.0f µs", r-median(f.rtt50))
		}
		fprintf(w, row, p.name, strconv.Itoa(n), fmt.Sprintf("%.0f", r), fmt.Sprintf("%+.0f µs", r-d), floor, over)
	}
}

// splitKiB formats per-role KiB figures and their sum.
func splitKiB(p *path, m map[string]float64) string {
	var parts []string
	total := 0.0
	for _, role := range roles {
		if v, ok := m[role]; ok {
			total += v
			parts = append(parts, fmt.Sprintf("%.1f", v))
		}
	}
	return fmt.Sprintf("%s = %.1f", strings.Join(parts, "/"), total)
}

func mbs(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// startClientPath starts a relay, a host and a client for one client path
// (key names the relay's directory).
func startClientPath(ctx context.Context, ps *procs, tgt *target, key, name, mode string, tls, e2e bool) (*path, error) {
	r, err := ps.startRelay(ctx, key, relayOpts{tls: tls})
	if err != nil {
		return nil, err
	}
	var metrics string
	if e2e {
		// The host's metrics say whether its streams are E2E-encrypted.
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		metrics = "127.0.0.1:" + strconv.Itoa(mp)
	}
	h, err := ps.startHost(r, mode, tgt.port(), metrics)
	if err != nil {
		return nil, err
	}
	if err := r.waitHost(ctx, h, tgt.port()); err != nil {
		return nil, err
	}
	c, addr, err := ps.startClient(ctx, r, mode, tgt.port(), e2e)
	if err != nil {
		return nil, fmt.Errorf("%w\nhost output:\n%s", err, tail(h.out.String(), 2000))
	}
	p := newPath(name, addr, r.p, h, c)
	if e2e {
		p.e2e = &e2eCheck{metrics: metrics, client: c}
		// Fail now, not after the run, if the streams are not E2E.
		if err := waitReachable(ctx, addr); err != nil {
			return nil, err
		}
		if _, err := p.e2e.verify(ctx, p.name); err != nil {
			return nil, err
		}
	}
	return p, nil
}
