package turnclient

import (
	"crypto/rand"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// BenchmarkTCPOverlay pushes bulk TCP streams through the tcp overlay
// (tunnel-client → pion TURN → tunnel-server → KCP+smux → TCP echo) and
// back with the PSK profile and with the compat profile side by side, and
// the same bytes straight to the echo, all in the same run. The profiles
// alternate stream by stream so that a machine busy with something else
// slows both alike. Reported per profile: MB/s (payload echoed) and CPU
// milliseconds per MB (this process: client and server, and the TURN
// server when it is pion's); then psk/compat (the throughput ratio), direct
// MB/s and psk-x-direct. The TURN server is the in-process pion one, and
// coturn (TURN over UDP and over TCP) when it is installed.
//
//	go test -run '^$' -bench BenchmarkTCPOverlay -benchtime 3x ./internal/turn/turnclient/
func BenchmarkTCPOverlay(b *testing.B) {
	type variant struct{ name, turn, mode string }
	variants := []variant{{"pion-turn-over-udp", "pion", "udp"}, {"coturn-turn-over-udp", "coturn", "udp"}, {"coturn-turn-over-tcp", "coturn", "tcp"}}
	for _, v := range variants {
		b.Run(v.name, func(b *testing.B) {
			const size = 16 << 20
			lab := startLab(b, turnlab.Config{}) // the TCP echo, and the pion TURN server
			link := ""
			if v.turn == "coturn" {
				link = "generic-turn://" + coturnUser + "@" + startBenchCoturn(b)
			}
			local := map[string]string{}
			for _, profile := range []string{"psk", "compat"} {
				scfg := turnserver.Config{Connect: lab.EchoTCP, Egress: "tcp"}
				if profile == "psk" {
					scfg.Keys = map[string][]byte{"default": testKey}
				} else {
					scfg.Compat = true
				}
				cfg := baseConfig(lab, startServer(b, scfg), v.mode, "tcp")
				if link != "" {
					cfg.Link, cfg.TURNPort = link, 0
				}
				cfg.Compat = profile == "compat"
				r := startClient(b, cfg)
				r.waitReady(b)
				local[profile] = r.local
			}
			data := make([]byte, size)
			rand.Read(data)
			var secs, cpu = map[string]float64{}, map[string]float64{}
			var direct float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, profile := range []string{"psk", "compat"} {
					c0 := cpuTime()
					secs[profile] += bulkEcho(b, local[profile], data)
					cpu[profile] += cpuTime() - c0
				}
				direct += bulkEcho(b, lab.EchoTCP, data)
			}
			b.StopTimer()
			mb := float64(size) / 1e6 * float64(b.N)
			for _, profile := range []string{"psk", "compat"} {
				b.ReportMetric(mb/secs[profile], profile+"-MB/s")
				b.ReportMetric(cpu[profile]*1000/mb, profile+"-cpu-ms/MB")
			}
			b.ReportMetric(secs["compat"]/secs["psk"], "psk/compat")
			b.ReportMetric(mb/direct, "direct-MB/s")
			b.ReportMetric(direct/secs["psk"], "psk-x-direct")
		})
	}
}

const coturnUser = "bench:benchpw"

// startBenchCoturn runs coturn (docs/protocols/turn-overlay.md §5) on a
// free loopback port, or skips the benchmark when it is not installed.
func startBenchCoturn(b *testing.B) string {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		b.Skip("coturn (turnserver) not installed")
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	minPort := 49152 + (port%100*100)%15000
	dir := b.TempDir()
	cmd := exec.Command(bin, "-n", "-L", "127.0.0.1", "-E", "127.0.0.1", "-p", strconv.Itoa(port), "--allow-loopback-peers",
		"--lt-cred-mech", "-u", coturnUser, "-r", "lab.local", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
		"--min-port", strconv.Itoa(minPort), "--max-port", strconv.Itoa(minPort+99),
		"--log-file", filepath.Join(dir, "coturn.log"), "--pidfile", filepath.Join(dir, "coturn.pid"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for deadline := time.Now().Add(15 * time.Second); ; {
		if c, err := net.DialTimeout("tcp4", addr, time.Second); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("coturn did not listen on %s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cpuTime is the CPU seconds (user + system) this process has used.
func cpuTime() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// bulkEcho writes data on one connection to addr while reading the echo
// back, checks it, and returns the seconds it took.
func bulkEcho(b *testing.B, addr string, data []byte) float64 {
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	start := time.Now()
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		b.Fatalf("read echo: %v", err)
	}
	el := time.Since(start)
	if err := <-errc; err != nil {
		b.Fatalf("write: %v", err)
	}
	if string(got) != string(data) {
		b.Fatal("echo differs")
	}
	return el.Seconds()
}
