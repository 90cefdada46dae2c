package wsconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	neturl "net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Options configures New. A nil *Options means the defaults.
type Options struct {
	// LocalAddr and RemoteAddr, if non-nil, are what Conn's LocalAddr and
	// RemoteAddr methods return. By default they are those reported by
	// websocket.NetConn: the hijacked connection's addresses for a
	// connection from websocket.Accept, and a placeholder
	// ("websocket/unknown-addr") for one from websocket.Dial.
	LocalAddr  net.Addr
	RemoteAddr net.Addr
}

// Conn is a net.Conn whose byte stream travels in binary messages of a
// WebSocket. Each Write sends one message; Read returns the bytes of
// consecutive messages as one stream, without message boundaries.
//
// Read and Write may be called concurrently with each other and with the
// deadline methods and Close; concurrent Reads (or concurrent Writes) are
// serialized.
type Conn struct {
	ws           *websocket.Conn
	laddr, raddr net.Addr

	closed           atomic.Bool
	life             context.Context // New's ctx
	ended            atomic.Bool     // life is done
	stopLife         func() bool     // stops the AfterFunc of New's ctx
	reading, writing sync.Mutex      // held for the whole of a Read / Write
	readDeadline     atomic.Pointer[time.Time]
	writeDeadline    atomic.Pointer[time.Time]

	// Guarded by reading: the message being read, and whether a close
	// frame of status 1000 or 1001 ended the stream.
	reader  io.Reader
	readEOF bool

	timers     sync.Mutex
	readTimer  *time.Timer // created by the first deadline set
	writeTimer *time.Timer
}

var _ net.Conn = (*Conn)(nil)

// New returns a Conn that carries a byte stream over c in binary messages.
// Conn takes over c: use c only through the Conn from now on.
//
// ctx bounds the lifetime of the Conn: once it is done, Reads and Writes
// fail and the WebSocket is dropped without a close handshake; Close
// still has to be called. As with websocket.NetConn, the
// read limit of c is disabled, since message boundaries carry no meaning
// here; a message of the wrong type (text) is an error that closes c.
func New(ctx context.Context, c *websocket.Conn, opts *Options) *Conn {
	c.SetReadLimit(-1)
	wc := &Conn{ws: c, life: ctx}
	if opts != nil {
		wc.laddr, wc.raddr = opts.LocalAddr, opts.RemoteAddr
	}
	if wc.laddr == nil || wc.raddr == nil {
		// Only NetConn can see the connection under c; this one is used
		// for its addresses and dropped (it holds nothing that needs
		// stopping: its timers are stopped and its contexts are never
		// cancelled).
		nc := websocket.NetConn(context.Background(), c, websocket.MessageBinary)
		if wc.laddr == nil {
			wc.laddr = nc.LocalAddr()
		}
		if wc.raddr == nil {
			wc.raddr = nc.RemoteAddr()
		}
	}
	if ctx.Done() != nil {
		wc.stopLife = context.AfterFunc(ctx, func() {
			wc.ended.Store(true)
			_ = c.CloseNow()
		})
	}
	return wc
}

// Dial opens a WebSocket to url with websocket.Dial and returns it as a
// Conn, together with the handshake response (whose body needs no closing).
// Use opts.Subprotocols to negotiate a subprotocol and Conn.Subprotocol to
// see which one the server chose.
//
// ctx bounds only the dial and handshake; once Dial has returned, the
// Conn lives until it is closed, as with net.Dialer.DialContext.
//
// Unlike websocket.Dial, the returned Conn reports the local and remote
// addresses of the TCP connection the handshake went over (the proxy's if
// the HTTP client uses a proxy). This is possible when opts.HTTPClient is
// nil or its Transport is nil or an *http.Transport, which Dial then copies
// for this one connection; with any other RoundTripper the addresses are
// the websocket.NetConn placeholder.
func Dial(ctx context.Context, url string, opts *websocket.DialOptions) (*Conn, *http.Response, error) {
	var o websocket.DialOptions
	if opts != nil {
		o = *opts
	}
	rec := &connRecorder{}
	if tr := recordingTransport(o.HTTPClient, rec, url); tr != nil {
		// A per-dial transport, so that the dialed connection seen by the
		// recorder is ours; the hijacked connection is not pooled, and
		// anything left idle by a failed handshake is dropped here.
		defer tr.CloseIdleConnections()
		var hc http.Client
		if o.HTTPClient != nil {
			hc = *o.HTTPClient
		}
		hc.Transport = tr
		o.HTTPClient = &hc
	}

	ws, resp, err := websocket.Dial(ctx, url, &o)
	if err != nil {
		return nil, resp, err
	}
	var wo Options
	if c := rec.last(); c != nil {
		wo.LocalAddr, wo.RemoteAddr = c.LocalAddr(), c.RemoteAddr()
		if co, ok := c.(*coalescer); ok {
			// The upgrade is done: from here on the stream is frames.
			co.on.Store(true)
		}
	}
	return New(context.Background(), ws, &wo), resp, nil
}

// RequestAddrs returns the local and remote addresses of the connection r
// arrived on, as net/http saw them, for use in Options. remote comes from
// r.RemoteAddr, so it reflects any middleware that rewrote it (for
// example to the client address a trusted reverse proxy forwarded). Either
// result is nil if it cannot be determined.
func RequestAddrs(r *http.Request) (local, remote net.Addr) {
	local, _ = r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		remote = net.TCPAddrFromAddrPort(ap)
	} else if a, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		remote = net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 0))
	}
	return local, remote
}

// Read reads stream bytes from the WebSocket. It returns io.EOF once the
// peer has closed the WebSocket normally (status 1000 or 1001).
func (c *Conn) Read(p []byte) (int, error) {
	c.reading.Lock()
	defer c.reading.Unlock()
	if err := c.precheck(&c.readDeadline); err != nil {
		return 0, c.opError("read", err)
	}
	for {
		n, err := c.read(p)
		if err != nil && err != io.EOF {
			err = c.opError("read", c.translate(err, &c.readDeadline))
		}
		if n > 0 || err != nil || len(p) == 0 {
			return n, err
		}
		// An empty message: read on.
	}
}

// read reads from the current message, moving to the next one at its end.
// The library is called with a context that is never done: the per-call
// context of websocket.NetConn costs a cancellation registration on every
// frame read and written, which showed in the profile of a busy tunnel.
// Deadlines and New's context close the WebSocket instead, as NetConn's
// cancellations end up doing.
func (c *Conn) read(p []byte) (int, error) {
	if c.readEOF {
		return 0, io.EOF
	}
	if c.reader == nil {
		typ, r, err := c.ws.Reader(context.Background())
		if err != nil {
			switch websocket.CloseStatus(err) {
			case websocket.StatusNormalClosure, websocket.StatusGoingAway:
				c.readEOF = true
				return 0, io.EOF
			}
			return 0, err
		}
		if typ != websocket.MessageBinary {
			err := fmt.Errorf("unexpected frame type read (expected %v): %v", websocket.MessageBinary, typ)
			_ = c.ws.Close(websocket.StatusUnsupportedData, err.Error())
			return 0, err
		}
		c.reader = r
	}
	n, err := c.reader.Read(p)
	if err == io.EOF {
		c.reader = nil
		err = nil
	}
	return n, err
}

// Write sends p as one binary message.
func (c *Conn) Write(p []byte) (int, error) {
	c.writing.Lock()
	defer c.writing.Unlock()
	if err := c.precheck(&c.writeDeadline); err != nil {
		return 0, c.opError("write", err)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageBinary, p); err != nil {
		return 0, c.opError("write", c.translate(err, &c.writeDeadline))
	}
	return len(p), nil
}

// Close closes the WebSocket with status 1000 (normal closure) after the
// close handshake, which the peer sees as io.EOF. It waits for the peer's
// answering close frame for up to 5 seconds (coder/websocket's limit).
// Pending and later Reads and Writes fail with an error matching
// net.ErrClosed.
func (c *Conn) Close() error {
	c.closed.Store(true)
	c.timers.Lock()
	for _, t := range []*time.Timer{c.readTimer, c.writeTimer} {
		if t != nil {
			t.Stop()
		}
	}
	c.timers.Unlock()
	if c.stopLife != nil {
		c.stopLife()
	}
	// A blocked Read receives the peer's answering close frame and ends.
	if err := c.ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		return c.opError("close", err)
	}
	return nil
}

// LocalAddr returns the local address; see Options and Dial.
func (c *Conn) LocalAddr() net.Addr {
	return c.laddr
}

// RemoteAddr returns the remote address; see Options and Dial.
func (c *Conn) RemoteAddr() net.Addr {
	return c.raddr
}

// Subprotocol returns the WebSocket subprotocol negotiated in the
// handshake, or "" if none was.
func (c *Conn) Subprotocol() string {
	return c.ws.Subprotocol()
}

// SetDeadline sets both the read and the write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	c.SetWriteDeadline(t)
	return nil
}

// SetReadDeadline sets the deadline for Read calls; the zero time means
// none. If it expires while a Read is blocked, the WebSocket is closed (see
// the package documentation).
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.setDeadline(t, &c.readDeadline, &c.reading, &c.readTimer)
	return nil
}

// SetWriteDeadline sets the deadline for Write calls; the zero time means
// none. If it expires while a Write is blocked, the WebSocket is closed
// (see the package documentation).
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.setDeadline(t, &c.writeDeadline, &c.writing, &c.writeTimer)
	return nil
}

// setDeadline records t for our own checks (precheck fails a call made
// after it) and arms the timer that interrupts a call blocked when it
// expires. busy is held by a call in progress.
func (c *Conn) setDeadline(t time.Time, d *atomic.Pointer[time.Time], busy *sync.Mutex, timer **time.Timer) {
	c.timers.Lock()
	defer c.timers.Unlock()
	if t.IsZero() {
		d.Store(nil)
	} else {
		d.Store(&t)
	}
	if *timer != nil {
		(*timer).Stop()
	}
	if t.IsZero() || c.closed.Load() {
		return
	}
	fire := func() {
		if !busy.TryLock() {
			// A call is blocked: only closing the WebSocket ends it.
			_ = c.ws.CloseNow()
			return
		}
		busy.Unlock()
	}
	if *timer == nil {
		*timer = time.AfterFunc(time.Until(t), fire)
	} else {
		(*timer).Reset(time.Until(t))
	}
}

func expired(d *time.Time) bool {
	return d != nil && !time.Now().Before(*d)
}

// precheck fails a Read or Write before it touches the WebSocket if the
// Conn is closed or the deadline has passed.
func (c *Conn) precheck(d *atomic.Pointer[time.Time]) error {
	switch {
	case c.closed.Load():
		return net.ErrClosed
	case c.ended.Load():
		return c.life.Err()
	case expired(d.Load()):
		return os.ErrDeadlineExceeded
	}
	return nil
}

// translate reports the errors of calls interrupted by Close, by a
// deadline or by the end of New's context as the net package does, not as
// the errors of the WebSocket they closed.
func (c *Conn) translate(err error, d *atomic.Pointer[time.Time]) error {
	if perr := c.precheck(d); perr != nil {
		return perr
	}
	return err
}

// opError wraps err the way the net package does, so that callers can use
// errors.Is(err, net.ErrClosed), net.Error's Timeout and the like.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "websocket", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// connRecorder remembers the last connection a transport dialed.
type connRecorder struct {
	mu sync.Mutex
	c  net.Conn
}

func (r *connRecorder) set(c net.Conn) {
	r.mu.Lock()
	r.c = c
	r.mu.Unlock()
}

func (r *connRecorder) last() net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.c
}

type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// recordingTransport returns a copy of hc's transport whose dials are
// recorded by rec, or nil if hc's transport is not an *http.Transport.
//
// The connection the WebSocket will run on is wrapped in a coalescer
// (see coalesce.go) when the transport hands it to the WebSocket as is: a
// plain ws:// connection, or a wss:// one from a TLS dial function. For
// wss:// without one, and without a proxy, a TLS dial function is
// installed that does what the transport would (TLS over DialContext,
// TLSClientConfig, HTTP/1.1) so that the coalescer sits above TLS.
func recordingTransport(hc *http.Client, rec *connRecorder, rawURL string) *http.Transport {
	var rt http.RoundTripper = http.DefaultTransport
	if hc != nil && hc.Transport != nil {
		rt = hc.Transport
	}
	base, ok := rt.(*http.Transport)
	if !ok {
		return nil
	}
	t := base.Clone()

	record := func(dial dialFunc, coalesce bool) dialFunc {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if coalesce {
				c = &coalescer{Conn: c}
			}
			rec.set(c)
			return c, nil
		}
	}
	u, err := neturl.Parse(rawURL)
	secure := err == nil && (u.Scheme == "wss" || u.Scheme == "https")
	// Wrap the dial functions the transport would use. The deprecated
	// context-free Dial/DialTLS are not supported: warren never sets them.
	dial := t.DialContext
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	t.DialContext = record(dial, !secure)
	if t.DialTLSContext == nil && secure && !proxied(t, u) {
		t.DialTLSContext = tlsDial(dial, t.TLSClientConfig)
	}
	if t.DialTLSContext != nil {
		t.DialTLSContext = record(t.DialTLSContext, true)
	}
	return t
}

// proxied reports whether t would send a request for u through a proxy
// (or cannot tell).
func proxied(t *http.Transport, u *neturl.URL) bool {
	if t.Proxy == nil {
		return false
	}
	pu := *u
	pu.Scheme = "https"
	p, err := t.Proxy(&http.Request{URL: &pu, Header: http.Header{}})
	return err != nil || p != nil
}

// tlsDial returns a TLS dial function over dial with cfg, for HTTP/1.1.
func tlsDial(dial dialFunc, cfg *tls.Config) dialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		raw, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		var c *tls.Config
		if cfg != nil {
			c = cfg.Clone()
		} else {
			c = &tls.Config{}
		}
		if c.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				host = addr
			}
			c.ServerName = host
		}
		c.NextProtos = []string{"http/1.1"}
		tc := tls.Client(raw, c)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return tc, nil
	}
}
