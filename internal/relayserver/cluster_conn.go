package relayserver

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// hopConn is a port connection carried over the hop's WebSocket with
// half-close: binary messages carry bytes, and a text message "eof" says
// the sender has nothing more to write (CloseWrite), so a client that
// half-closes its TCP connection still gets the rest of the answer. A
// plain WebSocket byte stream could only close both ways at once.
type hopConn struct {
	ws            *websocket.Conn
	ctx           context.Context
	cancel        context.CancelFunc
	local, remote net.Addr

	rmu sync.Mutex
	r   io.Reader // the message being read
	eof bool

	wmu  sync.Mutex
	once sync.Once
}

// hopEOF is the half-close message.
const hopEOF = "eof"

// hopMaxMessage bounds one hop message; writers send at most 32 KiB.
const hopMaxMessage = 1 << 20

func newHopConn(ctx context.Context, ws *websocket.Conn, local, remote net.Addr) *hopConn {
	ws.SetReadLimit(hopMaxMessage)
	ctx, cancel := context.WithCancel(ctx)
	return &hopConn{ws: ws, ctx: ctx, cancel: cancel, local: local, remote: remote}
}

func (c *hopConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.eof {
			return 0, io.EOF
		}
		if c.r != nil {
			n, err := c.r.Read(p)
			if errors.Is(err, io.EOF) {
				c.r = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			return n, err
		}
		typ, r, err := c.ws.Reader(c.ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return 0, io.EOF
			}
			return 0, err
		}
		if typ == websocket.MessageText {
			_, _ = io.Copy(io.Discard, r)
			c.eof = true
			continue
		}
		c.r = r
	}
}

func (c *hopConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.Write(c.ctx, websocket.MessageBinary, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// CloseWrite tells the peer this side is done writing.
func (c *hopConn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.ws.Write(c.ctx, websocket.MessageText, []byte(hopEOF))
}

func (c *hopConn) Close() error {
	c.once.Do(func() {
		// A normal close handshake, which the websocket library bounds
		// (5 s) should the peer not answer it.
		_ = c.ws.Close(websocket.StatusNormalClosure, "")
		c.cancel()
	})
	return nil
}

func (c *hopConn) LocalAddr() net.Addr  { return c.local }
func (c *hopConn) RemoteAddr() net.Addr { return c.remote }

// Deadlines are not supported on the hop: its users (pipe.Join, web
// forwarding's transport) end blocked calls by closing the connection.
func (c *hopConn) SetDeadline(time.Time) error      { return nil }
func (c *hopConn) SetReadDeadline(time.Time) error  { return nil }
func (c *hopConn) SetWriteDeadline(time.Time) error { return nil }
