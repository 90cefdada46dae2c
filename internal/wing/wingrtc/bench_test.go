package wingrtc

import (
	"net/netip"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
)

// BenchmarkPionLoopback: the DataChannel alone (pion SCTP over DTLS over
// UDP on loopback, both ends in this process), with the settings of
// NewAPI, carrying 100 MiB in 64 KiB messages through a Sender: the
// ceiling of what a direct session's output can reach on this machine.
// cpu-ms/MB is the process's CPU time (user and system, both ends and the
// kernel's loopback work) per MB carried.
func BenchmarkPionLoopback(b *testing.B) {
	const total = 100 << 20
	msg := make([]byte, 64<<10)
	var dur, cpu time.Duration
	var n int64
	for b.Loop() {
		tx, rx, done := loopbackPair(b)
		var got atomic.Int64
		all := make(chan struct{})
		rx.OnMessage(func(m webrtc.DataChannelMessage) {
			if got.Add(int64(len(m.Data))) == total {
				close(all)
			}
		})
		s := NewSender(tx, done)
		start, cpu0 := time.Now(), cpuTime()
		for sent := 0; sent < total; sent += len(msg) {
			if err := s.SendBinary(msg); err != nil {
				b.Fatal(err)
			}
		}
		<-all
		dur += time.Since(start)
		cpu += cpuTime() - cpu0
		n += total
	}
	b.ReportMetric(float64(n)/1e6/dur.Seconds(), "MB/s")
	b.ReportMetric(float64(cpu.Milliseconds())/(float64(n)/1e6), "cpu-ms/MB")
}

// cpuTime is the CPU time this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loopbackPair connects two peer connections over loopback and returns
// the offerer's open channel and the answerer's; both close at the end
// of the benchmark.
func loopbackPair(b *testing.B) (tx, rx *webrtc.DataChannel, dead chan struct{}) {
	b.Helper()
	api := NewAPI(Options{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	p1, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	p2, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		b.Fatal(err)
	}
	dead = make(chan struct{})
	b.Cleanup(func() { close(dead); p1.Close(); p2.Close() })
	open := make(chan *webrtc.DataChannel, 1)
	rxc := make(chan *webrtc.DataChannel, 1)
	p2.OnDataChannel(func(dc *webrtc.DataChannel) { rxc <- dc })
	dc, err := p1.CreateDataChannel("bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	dc.OnOpen(func() { open <- dc })
	offer, _ := p1.CreateOffer(nil)
	g1 := webrtc.GatheringCompletePromise(p1)
	p1.SetLocalDescription(offer)
	<-g1
	if err := p2.SetRemoteDescription(*p1.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	answer, _ := p2.CreateAnswer(nil)
	g2 := webrtc.GatheringCompletePromise(p2)
	p2.SetLocalDescription(answer)
	<-g2
	if err := p1.SetRemoteDescription(*p2.LocalDescription()); err != nil {
		b.Fatal(err)
	}
	select {
	case tx = <-open:
	case <-time.After(20 * time.Second):
		b.Fatal("no channel")
	}
	return tx, <-rxc, dead
}
