package turnclient

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/turn/turnlab"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// BenchmarkUDPOverlay pushes 1200-byte datagrams from a local socket
// through tunnel-client → pion TURN → tunnel-server → UDP echo and back,
// and the same datagrams straight to the echo, in the same run. Reported:
// overlay and direct packets/s and MB/s (echoed payload), their ratio
// (x-direct), and the loss rate at a fixed offered load (loss-%@1000pps and @2000pps, 1200-byte datagrams).
//
//	go test -run '^$' -bench BenchmarkUDPOverlay -benchtime 3x ./internal/turn/turnclient/
func BenchmarkUDPOverlay(b *testing.B) {
	for _, mode := range []string{"udp", "tcp"} {
		b.Run("turn-over-"+mode, func(b *testing.B) {
			lab := startLab(b, turnlab.Config{})
			peer := startServer(b, turnserver.Config{Connect: lab.EchoUDP, Keys: map[string][]byte{"default": testKey}})
			cfg := baseConfig(lab, peer, mode, "udp")
			cfg.Connections = 4
			cfg.Registry = prometheus.NewRegistry()
			r := startClient(b, cfg)
			r.waitReady(b)
			// One local peer for the whole run (the WireGuard case): it
			// binds every worker. A fresh socket per phase would be a new
			// peer that has to take workers from the old, idle binding.
			oc := dialUDP(b, r.local)
			dc := dialUDP(b, lab.EchoUDP)
			echoOnce(b, oc, []byte("warm-up"))

			const size, count, window = 1200, 4000, 128
			var overlayPPS, directPPS, loss1k, loss2k float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				overlayPPS += windowed(oc, size, count, window)
				directPPS += windowed(dc, size, count, window)
				loss1k += offeredLoad(oc, size, 1000, time.Second)
				loss2k += offeredLoad(oc, size, 2000, time.Second)
			}
			b.StopTimer()
			n := float64(b.N)
			overlayPPS, directPPS, loss1k, loss2k = overlayPPS/n, directPPS/n, loss1k/n, loss2k/n
			b.ReportMetric(overlayPPS, "pkt/s")
			b.ReportMetric(overlayPPS*size/1e6, "MB/s")
			b.ReportMetric(directPPS, "direct-pkt/s")
			b.ReportMetric(directPPS*size/1e6, "direct-MB/s")
			b.ReportMetric(overlayPPS/directPPS, "x-direct")
			b.ReportMetric(loss1k*100, "loss-%@1000pps")
			b.ReportMetric(loss2k*100, "loss-%@2000pps")
		})
	}
}

// windowed echoes count datagrams with at most window in flight and
// returns the echoed datagrams per second. Lost datagrams are given up on
// after an idle gap, so loss lowers the rate instead of hanging.
func windowed(c net.Conn, size, count, window int) float64 {
	drain(c)
	var got atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for got.Load() < int64(count) {
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if _, err := c.Read(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	msg := make([]byte, size)
	start := time.Now()
	sent := 0
	for sent < count {
		select {
		case <-done:
			sent = count
			continue
		default:
		}
		if int64(sent)-got.Load() >= int64(window) {
			time.Sleep(50 * time.Microsecond)
			// Presume the oldest datagrams lost when nothing comes back.
			if time.Since(start) > 30*time.Second {
				break
			}
			continue
		}
		c.Write(msg)
		sent++
	}
	<-done
	return float64(got.Load()) / time.Since(start).Seconds()
}

// offeredLoad sends at a fixed rate for d and returns the fraction of
// datagrams that did not come back.
func offeredLoad(c net.Conn, size, pps int, d time.Duration) float64 {
	drain(c)
	var got atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for ctx.Err() == nil {
			c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := c.Read(buf); err == nil {
				got.Add(1)
			}
		}
	}()
	msg := make([]byte, size)
	total := int(float64(pps) * d.Seconds())
	interval := time.Second / time.Duration(pps)
	start := time.Now()
	for i := 0; i < total; i++ {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		if _, err := c.Write(msg); err != nil {
			panic(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // let the tail come back
	cancel()
	<-done
	return 1 - float64(got.Load())/float64(total)
}

func dialUDP(b *testing.B, addr string) net.Conn {
	c, err := net.Dial("udp4", addr)
	if err != nil {
		b.Fatal(err)
	}
	c.(*net.UDPConn).SetReadBuffer(4 << 20)
	b.Cleanup(func() { c.Close() })
	return c
}

// drain discards late echoes of an earlier phase (and clears the write
// deadline echoOnce left behind).
func drain(c net.Conn) {
	c.SetWriteDeadline(time.Time{})
	buf := make([]byte, 2048)
	for {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}
