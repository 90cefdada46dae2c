package pipe_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/transport/pipe"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// TestJoinWebSocketToTCP splices a WebSocket onto a TCP connection, as a
// relay does. The WebSocket cannot half-close, so the backend's EOF closes
// it, which its client sees as the reply followed by io.EOF.
func TestJoinWebSocketToTCP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()

	b, backend := tcpPair(t)
	res := make(chan joinResult, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		st, err := pipe.Join(ctx, wsconn.New(ctx, ws, nil), b, nil)
		res <- joinResult{st, err}
	}))
	t.Cleanup(srv.Close)

	client, _, err := wsconn.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	client.SetDeadline(time.Now().Add(testTimeout))

	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(backend, got); err != nil || string(got) != "ping" {
		t.Fatalf("backend read %q, %v", got, err)
	}
	if _, err := backend.Write([]byte("pong")); err != nil {
		t.Fatal(err)
	}
	backend.CloseWrite()

	reply, err := io.ReadAll(client)
	if err != nil || string(reply) != "pong" {
		t.Fatalf("client read %q, %v; want \"pong\" then io.EOF", reply, err)
	}
	r := wait(t, res)
	if r.err != nil {
		t.Fatalf("Join: %v", r.err)
	}
	if want := (pipe.Stats{AToB: 4, BToA: 4}); r.stats != want {
		t.Errorf("Stats = %+v, want %+v", r.stats, want)
	}
}
