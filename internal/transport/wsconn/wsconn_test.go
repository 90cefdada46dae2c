package wsconn_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// testTimeout bounds every test so that a bug shows up as a failure, not a hang.
const testTimeout = 30 * time.Second

const subprotocol = "warren.test"

// newServer starts a real WebSocket server whose every connection is
// handed, as a *wsconn.Conn, to handle and closed when handle returns.
// Handlers must have returned by the end of the test.
func newServer(t *testing.T, tls bool, handle func(*wsconn.Conn)) *httptest.Server {
	t.Helper()
	var wg sync.WaitGroup
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wg.Add(1)
		defer wg.Done()
		ws, err := wsconn.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{subprotocol}})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		local, remote := wsconn.RequestAddrs(r)
		c := wsconn.New(r.Context(), ws, &wsconn.Options{LocalAddr: local, RemoteAddr: remote})
		defer c.Close()
		handle(c)
	})
	var srv *httptest.Server
	if tls {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	// httptest.Server.Close does not wait for hijacked connections, so
	// wait for the handlers ourselves.
	t.Cleanup(func() {
		srv.Close()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("server handlers did not return")
		}
	})
	return srv
}

func echo(c *wsconn.Conn) { io.Copy(c, c) }

// dial connects to srv; the Conn is closed at the end of the test, before
// the server is shut down.
func dial(t *testing.T, srv *httptest.Server, opts *websocket.DialOptions) *wsconn.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, _, err := wsconn.Dial(ctx, srv.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// Safety net against hangs, not a timing assertion.
	c.SetDeadline(time.Now().Add(testTimeout))
	return c
}

func TestEchoLargeStream(t *testing.T) {
	for _, secure := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[secure], func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, secure, echo)
			var opts *websocket.DialOptions
			if secure {
				opts = &websocket.DialOptions{HTTPClient: srv.Client()}
			}
			echoLargeStream(t, dial(t, srv, opts))
		})
	}
}

func echoLargeStream(t *testing.T, c *wsconn.Conn) {

	data := make([]byte, 2<<20)
	rand.Read(data)

	// Uneven write sizes, so message boundaries do not line up with the
	// reader's buffer.
	werr := make(chan error, 1)
	go func() {
		rest := data
		for len(rest) > 0 {
			n, err := rand.Int(rand.Reader, big.NewInt(64<<10))
			if err != nil {
				werr <- err
				return
			}
			k := min(int(n.Int64())+1, len(rest))
			if _, err := c.Write(rest[:k]); err != nil {
				werr <- err
				return
			}
			rest = rest[k:]
		}
		werr <- nil
	}()

	got := make([]byte, len(data))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed stream differs from what was sent")
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPastDeadlineTimesOutHarmlessly(t *testing.T) {
	t.Parallel()
	srv := newServer(t, false, echo)
	c := dial(t, srv, nil)

	c.SetReadDeadline(time.Now().Add(-time.Second))
	n, err := c.Read(make([]byte, 10))
	if n != 0 || !isTimeout(err) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %d, %v; want a timeout", n, err)
	}
	// Old code asserts the type directly instead of using errors.As.
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Errorf("error %T is not a net.Error with Timeout", err)
	}

	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if n, err := c.Write([]byte("x")); n != 0 || !isTimeout(err) {
		t.Fatalf("Write = %d, %v; want a timeout", n, err)
	}

	// A deadline that had passed before the call must not have broken the
	// connection.
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write([]byte("still alive")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("still alive"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "still alive" {
		t.Fatalf("echo after deadlines = %q, %v", got, err)
	}
}

func TestDeadlineInterruptsBlockedRead(t *testing.T) {
	t.Parallel()
	serverErr := make(chan error, 1)
	srv := newServer(t, false, func(c *wsconn.Conn) {
		_, err := c.Read(make([]byte, 1)) // the client never writes
		serverErr <- err
	})
	c := dial(t, srv, nil)

	// Short, so the Read really is blocked when it expires; the test
	// checks what happens, not when.
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	if n, err := c.Read(make([]byte, 1)); n != 0 || !isTimeout(err) {
		t.Fatalf("Read = %d, %v; want a timeout", n, err)
	}

	// Documented limitation: the interrupted read took the WebSocket down.
	c.SetReadDeadline(time.Time{})
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("Read after an interrupted read succeeded; want an error")
	}
	select {
	case err := <-serverErr:
		if err == nil {
			t.Error("server Read succeeded; want EOF or an error")
		}
	case <-time.After(testTimeout):
		t.Fatal("server Read did not return")
	}
}

func TestCloseEndsPeerRead(t *testing.T) {
	t.Parallel()
	t.Run("client closes", func(t *testing.T) {
		t.Parallel()
		serverErr := make(chan error, 1)
		srv := newServer(t, false, func(c *wsconn.Conn) {
			got, err := io.ReadAll(c) // ReadAll maps io.EOF to nil
			if err == nil && string(got) != "last words" {
				err = errors.New("server read " + string(got))
			}
			serverErr <- err
		})
		c := dial(t, srv, nil)
		if _, err := c.Write([]byte("last words")); err != nil {
			t.Fatal(err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		select {
		case err := <-serverErr:
			if err != nil {
				t.Fatalf("server: %v; want the data followed by io.EOF", err)
			}
		case <-time.After(testTimeout):
			t.Fatal("server Read did not return")
		}
		if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Write after Close = %v, want net.ErrClosed", err)
		}
	})
	t.Run("server closes", func(t *testing.T) {
		t.Parallel()
		srv := newServer(t, false, func(c *wsconn.Conn) {
			c.Write([]byte("bye"))
			// newServer closes c when we return.
		})
		c := dial(t, srv, nil)
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("client read %q, %v; want \"bye\" then io.EOF", got, err)
		}
	})
	// The way pipe.Join closes a Conn: another goroutine is blocked in Read.
	// The peer must still see a clean close, not a dropped connection.
	t.Run("server closes during a blocked read", func(t *testing.T) {
		t.Parallel()
		readErr := make(chan error, 1)
		srv := newServer(t, false, func(c *wsconn.Conn) {
			go func() {
				_, err := c.Read(make([]byte, 1)) // the client never writes
				readErr <- err
			}()
			c.Write([]byte("bye"))
			c.Close()
			if err := <-readErr; err != io.EOF && !errors.Is(err, net.ErrClosed) {
				t.Errorf("blocked server Read = %v, want io.EOF or net.ErrClosed", err)
			}
		})
		c := dial(t, srv, nil)
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("client read %q, %v; want \"bye\" then io.EOF", got, err)
		}
	})
}

func TestAddrsAndSubprotocol(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[tls]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			type addrs struct{ local, remote, proto string }
			seen := make(chan addrs, 1)
			srv := newServer(t, tls, func(c *wsconn.Conn) {
				seen <- addrs{c.LocalAddr().String(), c.RemoteAddr().String(), c.Subprotocol()}
				io.Copy(io.Discard, c)
			})
			c := dial(t, srv, &websocket.DialOptions{
				HTTPClient:   srv.Client(),
				Subprotocols: []string{"other", subprotocol},
			})

			if got := c.Subprotocol(); got != subprotocol {
				t.Errorf("client Subprotocol = %q, want %q", got, subprotocol)
			}
			s := <-seen
			if s.proto != subprotocol {
				t.Errorf("server Subprotocol = %q, want %q", s.proto, subprotocol)
			}
			lnAddr := srv.Listener.Addr().String()
			if got := c.RemoteAddr().String(); got != lnAddr {
				t.Errorf("client RemoteAddr = %s, want %s", got, lnAddr)
			}
			if s.local != lnAddr {
				t.Errorf("server LocalAddr = %s, want %s", s.local, lnAddr)
			}
			if got := c.LocalAddr().String(); got != s.remote {
				t.Errorf("client LocalAddr = %s, server sees RemoteAddr %s", got, s.remote)
			}
			if c.LocalAddr().Network() != "tcp" {
				t.Errorf("client LocalAddr network = %q, want tcp", c.LocalAddr().Network())
			}
		})
	}
}

// roundTripper hides the *http.Transport behind it.
type roundTripper struct{ rt http.RoundTripper }

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.rt.RoundTrip(req)
}

func TestDialOtherRoundTripperFallsBack(t *testing.T) {
	t.Parallel()
	srv := newServer(t, false, echo)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	c := dial(t, srv, &websocket.DialOptions{HTTPClient: &http.Client{Transport: roundTripper{tr}}})
	// Documented: no way to see the connection, so the placeholder remains.
	if got := c.RemoteAddr().String(); !strings.Contains(got, "unknown") {
		t.Errorf("RemoteAddr = %s, want websocket.NetConn's placeholder", got)
	}
	if _, err := c.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, 2)); err != nil {
		t.Fatal(err)
	}
}

func TestDialContextOnlyBoundsHandshake(t *testing.T) {
	t.Parallel()
	srv := newServer(t, false, echo)
	ctx, cancel := context.WithCancel(context.Background())
	c, resp, err := wsconn.Dial(ctx, srv.URL, nil)
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("handshake status = %d", resp.StatusCode)
	}
	if _, err := c.Write([]byte("after cancel")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, make([]byte, len("after cancel"))); err != nil {
		t.Fatal(err)
	}
}

func TestDialError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, resp, err := wsconn.Dial(ctx, srv.URL, nil)
	if err == nil {
		c.Close()
		t.Fatal("Dial to a non-WebSocket endpoint succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("response = %+v, want the 404", resp)
	}
}

func TestNewContextBoundsLifetime(t *testing.T) {
	t.Parallel()
	srv := newServer(t, false, func(c *wsconn.Conn) { io.Copy(io.Discard, c) })
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	lifetime, end := context.WithCancel(context.Background())
	c := wsconn.New(lifetime, ws, nil)
	t.Cleanup(func() { c.Close() })

	end()
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("Read after the lifetime context ended succeeded")
	}
}

func TestRequestAddrs(t *testing.T) {
	t.Parallel()
	local := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 443}
	tests := []struct {
		remoteAddr string
		wantRemote string // "" for nil
	}{
		{"192.0.2.7:5555", "192.0.2.7:5555"},
		{"[2001:db8::1]:80", "[2001:db8::1]:80"},
		{"192.0.2.7", "192.0.2.7:0"}, // as some real-IP middleware leaves it
		{"not an address", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, net.Addr(local)))
		r.RemoteAddr = tt.remoteAddr
		l, rem := wsconn.RequestAddrs(r)
		if l != local {
			t.Errorf("%q: local = %v, want %v", tt.remoteAddr, l, local)
		}
		switch {
		case tt.wantRemote == "" && rem != nil:
			t.Errorf("%q: remote = %v, want nil", tt.remoteAddr, rem)
		case tt.wantRemote != "" && (rem == nil || rem.String() != tt.wantRemote):
			t.Errorf("%q: remote = %v, want %s", tt.remoteAddr, rem, tt.wantRemote)
		}
	}
}
