package turnclient

import (
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// BenchmarkTCPOverlay pushes one bulk TCP stream through the tcp overlay
// (tunnel-client → pion TURN over UDP → tunnel-server → KCP+smux → TCP
// echo) and back, with the PSK profile and with the compat profile, and
// the same bytes straight to the echo in the same run. Reported: overlay
// MB/s (payload echoed), direct MB/s and their ratio (x-direct).
//
//	go test -run '^$' -bench BenchmarkTCPOverlay -benchtime 2x ./internal/turn/turnclient/
func BenchmarkTCPOverlay(b *testing.B) {
	const size = 32 << 20
	for _, profile := range []string{"psk", "compat"} {
		b.Run(profile, func(b *testing.B) {
			lab := startLab(b, turnlab.Config{})
			scfg := turnserver.Config{Connect: lab.EchoTCP, Egress: "tcp"}
			if profile == "psk" {
				scfg.Keys = map[string][]byte{"default": testKey}
			} else {
				scfg.Compat = true
			}
			peer := startServer(b, scfg)
			cfg := baseConfig(lab, peer, "udp", "tcp")
			cfg.Compat = profile == "compat"
			r := startClient(b, cfg)
			r.waitReady(b)
			data := make([]byte, size)
			rand.Read(data)
			var overlay, direct float64
			b.SetBytes(size)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				overlay += bulkEcho(b, r.local, data)
				direct += bulkEcho(b, lab.EchoTCP, data)
			}
			b.StopTimer()
			n := float64(b.N)
			b.ReportMetric(overlay/n, "MB/s")
			b.ReportMetric(direct/n, "direct-MB/s")
			b.ReportMetric(overlay/direct, "x-direct")
		})
	}
}

// bulkEcho writes data on one connection to addr while reading the echo
// back, checks it, and returns the echoed MB/s.
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
	return float64(len(data)) / 1e6 / el.Seconds()
}
