package turnserver

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/overlaymetrics"
)

// TestFramedSession drives the framed udp overlay (version 2) by hand: two
// peer ids get their own upstream sockets and their own replies, a record
// that does not decode is dropped without ending the session, and a close
// frame gives the peer a fresh socket next time. A client offering no ALPN
// still gets the raw overlay.
func TestFramedSession(t *testing.T) {
	up, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := up.ReadFrom(buf)
			if err != nil {
				return
			}
			up.WriteTo([]byte(string(buf[:n])+"|"+from.String()), from)
		}
	}()
	key := bytes.Repeat([]byte{5}, 32)
	s, err := New(Config{Listen: "127.0.0.1:0", Connect: up.LocalAddr().String(), Keys: map[string][]byte{"default": key},
		Registry: prometheus.NewRegistry()}, slog.New(slog.DiscardHandler))
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

	connect := func(protocols ...string) *dtls.Conn {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts, _ := turndial.ClientOptions(turndial.ClientProfile{Identity: "default", Key: key, Protocols: protocols})
		hctx, hcancel := context.WithTimeout(ctx, 10*time.Second)
		defer hcancel()
		dc, err := turndial.Handshake(hctx, pc, addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { dc.Close() })
		return dc
	}
	read := func(dc *dtls.Conn) []byte {
		t.Helper()
		dc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, err := dc.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return buf[:n]
	}
	frame := func(typ byte, id uint32, payload string) []byte {
		b := make([]byte, overlay.FrameHeaderLen+len(payload))
		overlay.PutFrameHeader(b, typ, id)
		copy(b[overlay.FrameHeaderLen:], payload)
		return b
	}
	// ask sends payload as peer id and returns the upstream source port.
	ask := func(dc *dtls.Conn, id uint32, payload string) string {
		t.Helper()
		dc.Write(frame(overlay.FrameData, id, payload))
		f, err := overlay.ParseFrame(read(dc))
		if err != nil || f.Type != overlay.FrameData || f.Peer != id {
			t.Fatalf("reply to peer %d: %+v, %v", id, f, err)
		}
		got, from, _ := strings.Cut(string(f.Payload), "|")
		if got != payload {
			t.Fatalf("peer %d got %q", id, got)
		}
		return from
	}

	dc := connect(overlay.ALPNFramedUDP)
	if st, _ := dc.ConnectionState(); st.NegotiatedProtocol != overlay.ALPNFramedUDP {
		t.Fatalf("negotiated %q", st.NegotiatedProtocol)
	}
	a1, b1 := ask(dc, 1, "a"), ask(dc, 2, "b")
	if a1 == b1 || ask(dc, 1, "a-again") != a1 {
		t.Fatalf("peer sockets: 1 at %s, 2 at %s", a1, b1)
	}
	dc.Write([]byte{0x7f, 0, 0, 0, 1, 'x'})
	dc.Write(frame(overlay.FrameClose, 1, ""))
	if a2 := ask(dc, 1, "a-after-close"); a2 == a1 {
		t.Fatalf("peer 1 kept socket %s after its close frame", a1)
	}
	if d := counter(s.m.Dropped.WithLabelValues(overlaymetrics.ClientToUpstream)); d != 1 {
		t.Fatalf("%v records dropped, want the bad one", d)
	}

	raw := connect()
	if st, _ := raw.ConnectionState(); st.NegotiatedProtocol != "" {
		t.Fatalf("a client without ALPN negotiated %q", st.NegotiatedProtocol)
	}
	raw.Write([]byte("plain"))
	if got := string(read(raw)); !strings.HasPrefix(got, "plain|") {
		t.Fatalf("raw session got %q", got)
	}
}
