package tunnelhost

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/relayserver"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/store/sqlite"
)

// TestSDKClient: the official Go SDK client (V1 client path) through the
// relay to a V2 host and a forced V1 host.
func TestSDKClient(t *testing.T) {
	for _, mode := range []Mode{ModeAuto, ModeV1} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			port := relaytest.Echo(t)
			cfg := e.hostConfig(port)
			cfg.Mode = mode
			reg := prometheus.NewRegistry()
			cfg.Registerer = reg
			h := newHost(t, cfg)
			runHost(t, h)
			waitConnected(t, h)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			c := e.sdkClient(ctx)
			if err := sdktest.WaitForwarded(ctx, c, port); err != nil {
				t.Fatalf("WaitForForwardedPort: %v", err)
			}
			if err := sdkEcho(t, ctx, c, port, "hello from the Go SDK"); err != nil {
				t.Fatalf("echo: %v", err)
			}
			if got := metricValue(h.met.conns); got < 1 {
				t.Errorf("forwarded_connections_total = %v", got)
			}
			// The pipe counts a buffer just after writing it, so the echo can
			// come back before the counter moves: wait for it, bounded.
			for metricValue(h.met.bytesIn) < float64(len("hello from the Go SDK")) && ctx.Err() == nil {
				time.Sleep(10 * time.Millisecond)
			}
			if got := metricValue(h.met.bytesIn); got < float64(len("hello from the Go SDK")) {
				t.Errorf("bytes in = %v", got)
			}
			if got := metricValue(h.met.status.WithLabelValues("connected")); got != 1 {
				t.Errorf("status{connected} = %v", got)
			}
			// The relay leg (V2 or V1) ran the none key exchange; the SDK's
			// nested session inside it is the SDK's own, encrypted.
			if got := e.Metric("warren_relay_tunnel_ssh_sessions_total", "role", "host", "kex", "none"); got != 1 {
				t.Errorf("relay host sessions with kex none = %v, want 1", got)
			}
		})
	}
}

// TestV2RawClient: a raw V2 client (x/crypto over the client socket,
// forwarded-tcpip with the six-field payload). Also checks that an
// unforwarded port is refused and the endpoint goes away on shutdown.
func TestV2RawClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	h := newHost(t, e.hostConfig(port))
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- h.Run(ctx) }()
	waitConnected(t, h)

	tctx, tcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer tcancel()
	c := e.v2Client(tctx)
	ch, err := c.open(port)
	if err != nil {
		t.Fatalf("open forwarded-tcpip: %v", err)
	}
	echoRoundTrip(t, ch, "hello over V2")
	ch.Close()

	if _, err := c.open(port + 1); err == nil {
		t.Errorf("forwarded-tcpip to an unforwarded port was accepted")
	}

	cancel()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if h.Status() != StatusDisconnected {
		t.Errorf("status %q", h.Status())
	}
	eps, err := e.DB().ListEndpoints(context.Background(), e.Tunnel)
	if err != nil || len(eps) != 0 {
		t.Errorf("endpoints after clean shutdown: %v %d", err, len(eps))
	}
}

// TestRelayRestart: the relay stops and a new one starts on the same
// address with the same store; the host reconnects and new clients work.
func TestRelayRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	h := newHost(t, e.hostConfig(port))
	var mu sync.Mutex
	var seen []Status
	h.OnStatus(func(s Status) { mu.Lock(); seen = append(seen, s); mu.Unlock() })
	runHost(t, h)
	waitConnected(t, h)

	e.Restart()
	relaytest.WaitFor(t, "host to notice the restart", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for i, s := range seen {
			if s == StatusDisconnected && i > 0 {
				return true
			}
		}
		return false
	})
	waitConnected(t, h)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c := e.v2Client(ctx)
	ch, err := c.open(port)
	if err != nil {
		t.Fatalf("open after restart: %v", err)
	}
	echoRoundTrip(t, ch, "after the restart")
	ch.Close()
	sdk := e.sdkClient(ctx)
	if err := sdktest.WaitForwarded(ctx, sdk, port); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(t, ctx, sdk, port, "SDK after restart"); err != nil {
		t.Fatal(err)
	}
}

// TestTokenRefresh: a garbage host token with an API key is refreshed once
// and the host connects.
func TestTokenRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	cfg := e.hostConfig(port)
	cfg.HostToken = "garbage.not.ajwt"
	h := newHost(t, cfg)
	var mu sync.Mutex
	var seen []Status
	h.OnStatus(func(s Status) { mu.Lock(); seen = append(seen, s); mu.Unlock() })
	runHost(t, h)
	waitConnected(t, h)
	if n := h.RelayAttempts(); n != 2 {
		t.Errorf("relay upgrade attempts = %d, want 2", n)
	}
	mu.Lock()
	refreshed := false
	for _, s := range seen {
		refreshed = refreshed || s == StatusRefreshingTunnelAccessToken
	}
	mu.Unlock()
	if !refreshed {
		t.Errorf("statuses %v: no refreshingTunnelAccessToken", seen)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch, err := e.v2Client(ctx).open(port)
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, ch, "refreshed")
	ch.Close()
}

// TestTokenBadNoAPIKey: with only a bad host token there is nothing to
// refresh with. The management API refuses the token before any relay
// upgrade (zero upgrade attempts), and Run returns ErrUnauthorized.
func TestTokenBadNoAPIKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := newHost(t, Config{RelayURL: e.URL, TunnelID: e.Tunnel, HostToken: "garbage.not.ajwt"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.Run(ctx)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if n := h.RelayAttempts(); n != 0 {
		t.Errorf("relay upgrade attempts = %d", n)
	}
}

// TestTokenRefreshAlsoFails: the management API hands out tokens that the
// relay socket refuses (a second relay front end whose clock is 2 h behind
// issues already-expired tokens). The host refreshes once and stops with
// ErrUnauthorized after exactly two upgrade attempts.
func TestTokenRefreshAlsoFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Front end B: same store, same public URL (so its endpoint answers
	// point at the real relay A), clock 2 h behind.
	lnB, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(context.Background(), e.DBPath)
	if err != nil {
		t.Fatal(err)
	}
	srvB, err := relayserver.New(relayserver.Config{AdminKey: adminKey, Store: db, PublicURL: e.URL,
		Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctxB, cancelB := context.WithCancel(context.Background())
	doneB := make(chan struct{})
	go func() { _ = srvB.Serve(ctxB, lnB); close(doneB) }()
	defer func() { cancelB(); <-doneB; db.Close() }()

	h := newHost(t, Config{RelayURL: "http://" + lnB.Addr().String(), TunnelID: e.Tunnel, APIKey: e.APIKey})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = h.Run(ctx)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("Run = %v, want ErrUnauthorized", err)
	}
	if !strings.Contains(err.Error(), "refreshed tunnel access token also does not work") {
		t.Errorf("error text %q", err)
	}
	if n := h.RelayAttempts(); n != 2 {
		t.Errorf("relay upgrade attempts = %d, want 2", n)
	}
}

// TestReplacement: a second host on the same tunnel replaces the first,
// which returns ErrReplaced, does not reconnect and keeps its endpoint.
func TestReplacement(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	h1 := newHost(t, e.hostConfig(port))
	res1 := runHost(t, h1)
	waitConnected(t, h1)
	attempts := h1.RelayAttempts()

	h2 := newHost(t, e.hostConfig(port))
	runHost(t, h2)
	waitConnected(t, h2)
	select {
	case err := <-res1:
		if !errors.Is(err, ErrReplaced) {
			t.Fatalf("first host Run = %v, want ErrReplaced", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first host did not stop")
	}
	// Run has returned and its loop is the only dialer, so nothing can
	// reconnect later (TestMain's goleak catches anything outliving Run):
	// no upgrade between connected and returning means no reconnect.
	if n := h1.RelayAttempts(); n != attempts {
		t.Errorf("replaced host reconnected: %d relay upgrades after connecting, want 0", n-attempts)
	}
	if s := h1.Status(); s != StatusDisconnected {
		t.Errorf("replaced host status %v, want %v", s, StatusDisconnected)
	}
	eps, err := e.DB().ListEndpoints(context.Background(), e.Tunnel)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ep := range eps {
		found = found || ep.ID == h1.HostID()+"-relay"
	}
	if !found {
		t.Errorf("replaced host's endpoint was deleted: %+v", eps)
	}
	// The second host serves.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch, err := e.v2Client(ctx).open(port)
	if err != nil {
		t.Fatal(err)
	}
	echoRoundTrip(t, ch, "second host")
	ch.Close()
}

// TestAddRemovePortV1: ports added and removed at runtime reach a connected
// SDK client on a V1 host; RefreshPorts after an API-side change works too.
func TestAddRemovePortV1(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	p1, p2, p3 := relaytest.Echo(t), relaytest.Echo(t), relaytest.Echo(t)
	cfg := e.hostConfig(p1)
	cfg.Mode = ModeV1
	cfg.RefreshInterval = -1
	h := newHost(t, cfg)
	runHost(t, h)
	waitConnected(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := e.sdkClient(ctx)
	if err := sdktest.WaitForwarded(ctx, c, p1); err != nil {
		t.Fatal(err)
	}

	if err := h.AddPort(ctx, Port{Number: p2}); err != nil {
		t.Fatalf("AddPort: %v", err)
	}
	if err := sdktest.WaitForwarded(ctx, c, p2); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(t, ctx, c, p2, "added port"); err != nil {
		t.Fatalf("echo on added port: %v", err)
	}

	if err := h.RemovePort(ctx, p2); err != nil {
		t.Fatalf("RemovePort: %v", err)
	}
	if err := sdkEcho(t, ctx, c, p2, "removed port"); err == nil {
		t.Fatalf("connection to a removed port worked")
	}
	if got := h.Ports(); len(got) != 1 || got[0].Number != p1 {
		t.Errorf("Ports() = %v", got)
	}

	// A port added through the API only shows up after RefreshPorts.
	code, body := e.Do("PUT", "/tunnels/"+e.Tunnel+"/ports/"+itoa(p3)+"?api-version=2023-09-27-preview", "Bearer "+e.APIKey, `{"portNumber":`+itoa(p3)+`}`)
	if code != http.StatusOK && code != http.StatusCreated {
		t.Fatalf("PUT port: %d %s", code, body)
	}
	if err := c.RefreshPorts(ctx); err != nil {
		t.Fatalf("RefreshPorts: %v", err)
	}
	if err := sdktest.WaitForwarded(ctx, c, p3); err != nil {
		t.Fatal(err)
	}
	if err := sdkEcho(t, ctx, c, p3, "refreshed port"); err != nil {
		t.Fatalf("echo on refreshed port: %v", err)
	}

	// SetPorts reconciles back to p1 alone.
	if err := h.SetPorts(ctx, []Port{{Number: p1}}); err != nil {
		t.Fatal(err)
	}
	if got := h.Ports(); len(got) != 1 || got[0].Number != p1 {
		t.Errorf("Ports() after SetPorts = %v", got)
	}
	if err := sdkEcho(t, ctx, c, p1, "still here"); err != nil {
		t.Fatal(err)
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

// TestConcurrentClients: 50 V2 connections, each 256 KiB random, echo
// verified by SHA-256.
func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	cfg := e.hostConfig(port)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	h := newHost(t, cfg)
	runHost(t, h)
	waitConnected(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	c := e.v2Client(ctx)
	const n, size = 50, 256 << 10
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			data := randomBytes(size)
			ch, err := c.open(port)
			if err != nil {
				errs <- err
				return
			}
			defer ch.Close()
			go func() {
				_, _ = ch.Write(data)
				_ = ch.CloseWrite()
			}()
			hsh := sha256.New()
			if _, err := io.Copy(hsh, ch); err != nil {
				errs <- err
				return
			}
			if want := sha256.Sum256(data); string(hsh.Sum(nil)) != string(want[:]) {
				errs <- errors.New("echo digest mismatch")
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := metricValue(h.met.bytesOut); got < n*size {
		t.Errorf("bytes out = %v, want >= %d", got, n*size)
	}
	if got := metricValue(h.met.conns); got < n {
		t.Errorf("connections = %v", got)
	}
}

// TestHalfClose: the client half-closes its forwarded channel and still
// receives the rest of the reply.
func TestHalfClose(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A server that answers only after reading EOF.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				_, _ = c.Write([]byte("got " + string(b)))
			}()
		}
	}()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	h := newHost(t, e.hostConfig(port))
	runHost(t, h)
	waitConnected(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ch, err := e.v2Client(ctx).open(port)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.Write([]byte("request")); err != nil {
		t.Fatal(err)
	}
	if err := ch.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(ch)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "got request" {
		t.Fatalf("reply %q", got)
	}
}

// TestNestedUnknownChannel: a V1 client (raw x/crypto, nested SSH) opening
// an unknown channel type is rejected with "unknown channel type"; its
// session channel is accepted.
func TestNestedUnknownChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	h := newHost(t, e.hostConfig(port))
	runHost(t, h)
	waitConnected(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	sc := e.v1RawClient(ctx, h)
	if _, _, err := sc.OpenChannel("session", nil); err != nil {
		t.Fatalf("session channel: %v", err)
	}
	_, _, err := sc.OpenChannel("foo", nil)
	var oce *ssh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != ssh.UnknownChannelType || oce.Message != "unknown channel type" {
		t.Fatalf("open foo: %v", err)
	}
}

func metricValue(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		return -1
	}
	switch {
	case d.Counter != nil:
		return d.Counter.GetValue()
	case d.Gauge != nil:
		return d.Gauge.GetValue()
	}
	return -1
}

// TestFatalNotFound: an unknown tunnel is a fatal 404, not retried.
func TestFatalNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.hostConfig()
	cfg.TunnelID = "no-such-tunnel"
	h := newHost(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := h.Run(ctx)
	var se *apiclient.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Fatalf("Run = %v, want a 404 StatusError", err)
	}
	if h.Status() != StatusDisconnected {
		t.Errorf("status %q", h.Status())
	}
}

// TestV2E2E: a V2 client asking for end-to-end encryption gets
// isE2EEncryptionEnabled=true in the confirmation (through the relay), and
// inside the channel an SSH session whose host key is the published one,
// whose "session" channel echoes; one not asking gets false and plain
// bytes. A client checking for another host key fails the inner handshake.
func TestV2E2E(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	port := relaytest.Echo(t)
	cfg := e.hostConfig(port)
	cfg.Registerer = prometheus.NewRegistry()
	h := newHost(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- h.Run(ctx) }()
	defer func() { cancel(); <-res }()
	waitConnected(t, h)

	tctx, tcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer tcancel()
	c := e.v2Client(tctx)
	open := func(e2e bool) (ssh.Channel, bool) {
		t.Helper()
		req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port), AccessToken: c.token, IsE2EEncryptionRequested: e2e}
		ch, reqs, confirm, err := ssh.OpenChannelWithConfirm(c.conn, tunnelproto.ChannelForwardedTCPIP, req.Marshal())
		if err != nil {
			t.Fatalf("open (e2e %v): %v", e2e, err)
		}
		go ssh.DiscardRequests(reqs)
		if len(confirm) != 1 {
			t.Errorf("confirmation data %x, want the one isE2EEncryptionEnabled byte", confirm)
		}
		return ch, tunnelproto.ParsePortRelayConnectResponse(confirm).IsE2EEncryptionEnabled
	}

	plain, enabled := open(false)
	if enabled {
		t.Fatal("E2E enabled without being asked for")
	}
	echoRoundTrip(t, plain, "plain over V2")
	plain.Close()

	inner := func(hostKey ssh.HostKeyCallback) (ssh.Channel, error) {
		ch, enabled := open(true)
		if !enabled {
			t.Fatal("E2E asked for, not enabled")
		}
		conn, chans, reqs, err := ssh.NewClientConn(tunnelrelay.ChannelConn(ch, "host"), "host", &ssh.ClientConfig{User: "tunnel", HostKeyCallback: hostKey})
		if err != nil {
			ch.Close()
			return nil, err
		}
		t.Cleanup(func() { conn.Close() })
		go ssh.DiscardRequests(reqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "test")
			}
		}()
		s, sreqs, err := conn.OpenChannel(tunnelproto.ChannelSession, nil)
		if err != nil {
			return nil, err
		}
		go ssh.DiscardRequests(sreqs)
		return s, nil
	}
	published := func(_ string, _ net.Addr, key ssh.PublicKey) error {
		for _, k := range h.HostPublicKeys() {
			if string(k.Marshal()) == string(key.Marshal()) {
				return nil
			}
		}
		return errors.New("not a published host key")
	}
	s, err := inner(published)
	if err != nil {
		t.Fatalf("E2E session: %v", err)
	}
	echoRoundTrip(t, s, "end to end over V2")
	s.Close()
	// The metric counts the E2E stream (not the plain one), by cipher: the
	// client's first choice (x/crypto's default list), which the host has.
	if got := metricValue(h.met.e2eStreams.WithLabelValues(ssh.CipherAES128GCM)); got != 1 {
		t.Errorf("e2e_streams_total{cipher=%q} = %v, want 1", ssh.CipherAES128GCM, got)
	}

	other, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inner(ssh.FixedHostKey(other.PublicKey())); err == nil {
		t.Error("an E2E session with another host key was accepted")
	}
}
