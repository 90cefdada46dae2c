package tunnelrelay

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

func TestSubprotocols(t *testing.T) {
	for _, tc := range []struct {
		side Side
		mode string
		want []string
	}{
		{HostSide, "", []string{tunnelproto.SubprotocolHostV2, tunnelproto.SubprotocolHostV1}},
		{HostSide, ModeV1, []string{tunnelproto.SubprotocolHostV1}},
		{ClientSide, ModeAuto, []string{tunnelproto.SubprotocolClientV2, tunnelproto.SubprotocolClientV1}},
		{ClientSide, ModeV2, []string{tunnelproto.SubprotocolClientV2}},
	} {
		got, err := Subprotocols(tc.side, tc.mode)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Subprotocols(%v, %q) = %v, %v; want %v", tc.side, tc.mode, got, err, tc.want)
		}
	}
	if _, err := Subprotocols(ClientSide, "v3"); !errors.Is(err, ErrUnknownMode) {
		t.Errorf("mode v3: err = %v, want ErrUnknownMode", err)
	}
}

func TestDialRelay(t *testing.T) {
	e := newEnv(t)
	ctx := testCtx(t)

	// The host socket, V1 only: the relay answers with what was offered.
	conn, err := Dial(ctx, DialConfig{URL: e.url("host", testTunnel), Side: HostSide, Mode: ModeV1,
		Token: e.token(testTunnel, tunnelproto.ScopeHost)})
	if err != nil {
		t.Fatal(err)
	}
	if got := conn.Subprotocol(); got != tunnelproto.SubprotocolHostV1 {
		t.Errorf("subprotocol %q, want %q", got, tunnelproto.SubprotocolHostV1)
	}
	conn.Close()

	// No token: a refusal with its status and body.
	_, err = Dial(ctx, DialConfig{URL: e.url("client", testTunnel), Side: ClientSide})
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Status != http.StatusUnauthorized || len(refused.Body) == 0 {
		t.Fatalf("no token: err = %v, want a RefusedError 401 with a body", err)
	}

	// A server that upgrades without a subprotocol.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := websocket.Accept(w, r, nil); err == nil {
			c.CloseNow()
		}
	}))
	defer srv.Close()
	_, err = Dial(ctx, DialConfig{URL: srv.URL, Side: ClientSide})
	var sub *SubprotocolError
	if !errors.As(err, &sub) || sub.Chosen != "" || len(sub.Offered) != 2 {
		t.Fatalf("no subprotocol: err = %v, want a SubprotocolError", err)
	}
}

func TestSSHHandshakeStuck(t *testing.T) {
	// A peer that never speaks: the timer ends the handshake, and conn is
	// closed.
	a, b := net.Pipe()
	defer b.Close()
	go func() { _, _ = io.Copy(io.Discard, b) }()
	_, _, _, err := SSHHandshake(a, "relay", &ssh.ClientConfig{
		User: "tunnel", HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 50 * time.Millisecond,
	})
	if err == nil {
		t.Fatal("handshake with a silent peer succeeded")
	}
	if _, err := a.Write([]byte("x")); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("conn after a failed handshake: write err = %v, want io.ErrClosedPipe", err)
	}
}
