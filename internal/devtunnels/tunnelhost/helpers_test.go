package tunnelhost

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/coder/websocket"
	tunnels "github.com/microsoft/dev-tunnels/go/tunnels"

	"github.com/warrenhq/warren/internal/devtunnels/sdktest"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/relayserver/relaytest"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

const adminKey = relaytest.AdminKey

// env is a real relay-server (internal/relayserver) on a loopback port with a
// sqlite store, an operator API key and one tunnel.
type env struct {
	*relaytest.Relay
	t *testing.T
}

func newEnv(t *testing.T) *env { return &env{Relay: relaytest.Start(t), t: t} }

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("TUNNELHOST_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (e *env) hostConfig(ports ...uint16) Config {
	cfg := Config{RelayURL: e.URL, TunnelID: e.Tunnel, APIKey: e.APIKey}
	for _, p := range ports {
		cfg.Ports = append(cfg.Ports, Port{Number: p})
	}
	return cfg
}

// runHost starts h.Run; the returned channel gets Run's result. The host is
// stopped at cleanup.
func runHost(t *testing.T, h *Host) <-chan error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	done := make(chan struct{})
	go func() { res <- h.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return res
}

func newHost(t *testing.T, cfg Config) *Host {
	t.Helper()
	h, err := New(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func waitConnected(t *testing.T, h *Host) {
	t.Helper()
	relaytest.WaitFor(t, "host connected", 15*time.Second, func() bool { return h.Status() == StatusConnected })
}

func echoRoundTrip(t *testing.T, rw io.ReadWriter, msg string) {
	t.Helper()
	if _, err := rw.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(rw, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo %q, want %q", buf, msg)
	}
}

// sdkClient connects the official Go SDK client (V1 relay path).
func (e *env) sdkClient(ctx context.Context) *tunnels.Client {
	e.t.Helper()
	return sdktest.Connect(e.t, ctx, e.URL, e.APIKey, e.Tunnel)
}

// sdkEcho pipes one connection through the SDK client to port and echoes.
func sdkEcho(t *testing.T, ctx context.Context, c *tunnels.Client, port uint16, msg string) error {
	t.Helper()
	mine, theirs := net.Pipe()
	defer mine.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.ConnectToForwardedPort(fctx, theirs, port) }()
	_ = mine.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := mine.Write([]byte(msg)); err != nil {
		select {
		case err2 := <-done:
			if err2 != nil {
				return err2
			}
		case <-time.After(time.Second):
		}
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(mine, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echo mismatch: " + string(buf))
	}
	cancel()
	<-done
	return nil
}

// v2Client is a raw x/crypto SSH client on the V2 client relay socket.
type v2Client struct {
	conn  ssh.Conn
	token string
}

func (e *env) v2Client(ctx context.Context) *v2Client {
	e.t.Helper()
	view := e.ClientView()
	if len(view.Endpoints) != 1 {
		e.t.Fatalf("endpoints: %+v", view.Endpoints)
	}
	tok := view.AccessTokens[tunnelproto.ScopeConnect]
	ws, resp, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolClientV2},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + tok}},
	})
	if err != nil {
		e.t.Fatalf("dial client relay: %v (%v)", err, resp)
	}
	if ws.Subprotocol() != tunnelproto.SubprotocolClientV2 {
		e.t.Fatalf("client subprotocol %q", ws.Subprotocol())
	}
	sc, chans, reqs, err := ssh.NewClientConn(ws, "relay", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "test client")
		}
	}()
	e.t.Cleanup(func() { sc.Close() })
	return &v2Client{conn: sc, token: tok}
}

func (c *v2Client) open(port uint16) (ssh.Channel, error) {
	payload := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port), AccessToken: c.token}.Marshal()
	ch, reqs, err := c.conn.OpenChannel(tunnelproto.ChannelForwardedTCPIP, payload)
	if err != nil {
		return nil, err
	}
	go ssh.DiscardRequests(reqs)
	return ch, nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// publishedKeys accepts any of the host keys h publishes (x/crypto clients
// prefer its ECDSA key, others its ed25519 one).
func publishedKeys(h *Host) ssh.HostKeyCallback {
	return func(_ string, _ net.Addr, k ssh.PublicKey) error {
		for _, p := range h.HostPublicKeys() {
			if bytes.Equal(p.Marshal(), k.Marshal()) {
				return nil
			}
		}
		return errors.New("host key is not one the host publishes")
	}
}

// v1RawClient is a raw x/crypto SSH client on the V1 client socket, talking
// to the host's nested server end to end; it checks the published host key.
func (e *env) v1RawClient(ctx context.Context, h *Host) ssh.Conn {
	e.t.Helper()
	view := e.ClientView()
	if len(view.Endpoints) != 1 {
		e.t.Fatalf("endpoints: %+v", view.Endpoints)
	}
	tok := view.AccessTokens[tunnelproto.ScopeConnect]
	ws, resp, err := wsconn.Dial(ctx, view.Endpoints[0].ClientRelayURI, &websocket.DialOptions{
		Subprotocols: []string{tunnelproto.SubprotocolClientV1},
		HTTPHeader:   http.Header{"Authorization": {"Tunnel " + tok}},
	})
	if err != nil {
		e.t.Fatalf("dial client relay: %v (%v)", err, resp)
	}
	sc, chans, reqs, err := ssh.NewClientConn(ws, "host", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: publishedKeys(h), Timeout: 10 * time.Second,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	go func() {
		for r := range reqs {
			if r.WantReply {
				_ = r.Reply(true, nil)
			}
		}
	}()
	go func() {
		for nc := range chans {
			_ = nc.Reject(ssh.Prohibited, "test client")
		}
	}()
	e.t.Cleanup(func() { sc.Close() })
	return sc
}
