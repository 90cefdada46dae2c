package turnserver

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol/alert"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnlab"
)

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	c.Write(&m)
	return m.GetCounter().GetValue()
}

// TestFailuresDoNotStopTheListener: garbage, a wrong key and a stalled
// handshake each fail their own connection only; a good client still works.
func TestFailuresDoNotStopTheListener(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go turnlab.EchoUDP(pc)
	key := bytes.Repeat([]byte{3}, 32)
	s, err := New(Config{Listen: "127.0.0.1:0", Connect: pc.LocalAddr().String(), Keys: map[string][]byte{"default": key},
		HandshakeTimeout: time.Second, Registry: prometheus.NewRegistry()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	dial := func(k []byte) (*dtls.Conn, error) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		dc, err := dtls.ClientWithOptions(c, addr, turndial.ClientPSKOptions("default", k)...)
		if err != nil {
			return nil, err
		}
		hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
		defer hcancel()
		return dc, dc.HandshakeContext(hctx)
	}
	// Garbage.
	g, _ := net.Dial("udp4", addr.String())
	g.Write([]byte("not dtls at all"))
	g.Close()
	// Wrong key.
	if _, err := dial(bytes.Repeat([]byte{4}, 32)); err == nil {
		t.Fatal("wrong key accepted")
	}
	// A client that sends a ClientHello and then goes silent.
	stall, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer stall.Close()
	sc, _ := dtls.ClientWithOptions(stall, addr, turndial.ClientPSKOptions("default", key)...)
	sctx, scancel := context.WithTimeout(ctx, 50*time.Millisecond)
	sc.HandshakeContext(sctx)
	scancel()
	stall.Close()

	dc, err := dial(key)
	if err != nil {
		t.Fatalf("good client after failures: %v", err)
	}
	dc.Write([]byte("still-serving"))
	dc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := dc.Read(buf)
	if err != nil || string(buf[:n]) != "still-serving" {
		t.Fatalf("echo: %q %v", buf[:n], err)
	}
	dc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for counter(s.m.TransportFailure.WithLabelValues(overlay.StageDTLSHandshake)) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("dtls_handshake failures: %v, want at least the wrong key's", counter(s.m.TransportFailure.WithLabelValues(overlay.StageDTLSHandshake)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{Connect: "127.0.0.1:1"}, nil); overlay.StageOf(err) != overlay.StageServerInit {
		t.Errorf("no keys, no compat: %v", err)
	}
	if _, err := New(Config{Compat: true}, nil); overlay.StageOf(err) != overlay.StagePolicyValidate {
		t.Errorf("no connect: %v", err)
	}
	if _, err := New(Config{Compat: true, Connect: "h:1", Egress: "sctp"}, nil); overlay.StageOf(err) != overlay.StagePolicyValidate {
		t.Errorf("bad egress: %v", err)
	}
}

// syncBuffer is a log sink the handler and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWrongKeyRefusedAtOnce: a client with a wrong key gets a fatal
// bad_record_mac alert and the server logs the failure, long before either
// handshake timeout (10 minutes here), on an IPv4 listener and on the
// dual-stack wildcard one tunnel-server listens on by default.
func TestWrongKeyRefusedAtOnce(t *testing.T) {
	for _, listen := range []string{"127.0.0.1:0", "0.0.0.0:0"} {
		t.Run(listen, func(t *testing.T) {
			var logs syncBuffer
			s, err := New(Config{Listen: listen, Connect: "127.0.0.1:9", Keys: map[string][]byte{"default": bytes.Repeat([]byte{3}, 32)},
				HandshakeTimeout: 10 * time.Minute, Registry: prometheus.NewRegistry()}, slog.New(slog.NewTextHandler(&logs, nil)))
			if err != nil {
				t.Fatal(err)
			}
			addr, err := s.Listen()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() { cancel(); <-done }()

			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: addr.(*net.UDPAddr).Port}
			hctx, hcancel := context.WithTimeout(ctx, time.Minute)
			defer hcancel()
			_, err = turndial.Handshake(hctx, pc, to, turndial.ClientPSKOptions("default", bytes.Repeat([]byte{4}, 32)))
			if !turndial.AlertIs(err, alert.BadRecordMac) {
				t.Fatalf("client got %v, want the bad_record_mac alert", err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(logs.String(), "event=connection_failure") {
				if time.Now().After(deadline) {
					t.Fatalf("no connection_failure logged:\n%s", logs.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if l := logs.String(); !strings.Contains(l, `PSK identity \"default\"`) || !strings.Contains(l, turndial.ErrKeyMismatch.Error()) {
				t.Fatalf("log does not name the identity and the mismatch:\n%s", l)
			}
		})
	}
}
