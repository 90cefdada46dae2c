package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The target server's protocol: a 9-byte header (an op byte and a
// big-endian uint64), then
//
//	'D' n: the target writes n bytes and then reads until EOF;
//	'E' 0: the target echoes until EOF.
const (
	opDownload = 'D'
	opEcho     = 'E'
	pingSize   = 64
)

// interrupt is done when the bench is interrupted (set by main).
var interrupt = context.Background()

// target is the TCP server every path ends at (and the direct path dials).
type target struct {
	ln  net.Listener
	buf int
	wg  sync.WaitGroup
}

func startTarget(bufSize int) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &target{ln: ln, buf: bufSize}
	t.wg.Add(1)
	go t.serve()
	return t, nil
}

func (t *target) port() uint16 { return uint16(t.ln.Addr().(*net.TCPAddr).Port) }
func (t *target) addr() string { return t.ln.Addr().String() }

func (t *target) close() { t.ln.Close(); t.wg.Wait() }

func (t *target) serve() {
	defer t.wg.Done()
	payload := make([]byte, t.buf)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for {
		c, err := t.ln.Accept()
		if err != nil {
			return
		}
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			defer c.Close()
			var h [9]byte
			if _, err := io.ReadFull(c, h[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint64(h[1:])
			switch h[0] {
			case opDownload:
				for n > 0 {
					k := min(n, uint64(len(payload)))
					if _, err := c.Write(payload[:k]); err != nil {
						return
					}
					n -= k
				}
				_, _ = io.Copy(io.Discard, c)
			case opEcho:
				// Small: the target's buffers are the tool's, not the path's.
				buf := make([]byte, 4<<10)
				for {
					k, err := c.Read(buf)
					if k > 0 {
						if _, werr := c.Write(buf[:k]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}
		}()
	}
}

func header(op byte, n uint64) []byte {
	var h [9]byte
	h[0] = op
	binary.BigEndian.PutUint64(h[1:], n)
	return h[:]
}

// download reads n bytes from the target through addr with a bufSize buffer.
func download(addr string, n int64, bufSize int) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	// An interrupted bench stops mid-transfer rather than after it.
	defer context.AfterFunc(interrupt, func() { c.Close() })()
	if _, err := c.Write(header(opDownload, uint64(n))); err != nil {
		return err
	}
	buf := make([]byte, bufSize)
	for got := int64(0); got < n; {
		k, err := c.Read(buf)
		got += int64(k)
		if err != nil {
			if got >= n {
				break
			}
			return fmt.Errorf("download via %s: %d of %d bytes: %w", addr, got, n, err)
		}
	}
	return nil
}

// downloadParallel runs streams downloads of n/streams bytes each at once
// and returns the wall time of the whole.
func downloadParallel(addr string, n int64, streams, bufSize int) (time.Duration, error) {
	each := n / int64(streams)
	errs := make(chan error, streams)
	start := time.Now()
	for range streams {
		go func() { errs <- download(addr, each, bufSize) }()
	}
	var first error
	for range streams {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(start), first
}

var ping = func() []byte {
	b := make([]byte, pingSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// openEcho connects through addr in echo mode and waits for one ping to
// come back, so that the whole path is set up when it returns.
func openEcho(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 30*time.Second)
	if err != nil {
		return nil, err
	}
	if err := pingOnce(c, append(header(opEcho, 0), ping...), make([]byte, pingSize)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func pingOnce(c net.Conn, msg, buf []byte) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.Write(msg); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf[len(buf)-pingSize:]) != string(ping) {
		return errors.New("echo mismatch")
	}
	return nil
}

// rtt measures n ping-pongs on one connection.
func rtt(addr string, n int) ([]time.Duration, error) {
	c, err := openEcho(addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	buf := make([]byte, pingSize)
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		if err := pingOnce(c, ping, buf); err != nil {
			return nil, err
		}
		d[i] = time.Since(start)
	}
	return d, nil
}

// newConns measures n sequential connect + first echo + close.
func newConns(addr string, n int) ([]time.Duration, error) {
	d := make([]time.Duration, n)
	for i := range d {
		start := time.Now()
		c, err := openEcho(addr)
		if err != nil {
			return nil, err
		}
		d[i] = time.Since(start)
		c.Close()
	}
	return d, nil
}

// webTarget serves GET / with a body of size bytes, written bufSize at a time.
func startWebTarget(size int64, bufSize int) (*http.Server, uint16, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, 0, err
	}
	payload := make([]byte, bufSize)
	for i := range payload {
		payload[i] = byte(i * 13)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Type", "application/octet-stream")
		if r.Method == http.MethodHead {
			return
		}
		for n := size; n > 0; {
			k := min(n, int64(len(payload)))
			if _, err := w.Write(payload[:k]); err != nil {
				return
			}
			n -= k
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	return srv, uint16(ln.Addr().(*net.TCPAddr).Port), nil
}

// get fetches url and reads the body with a bufSize buffer.
func get(c *http.Client, url string, h http.Header, want int64, bufSize int) error {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return err
	}
	req.Header = h
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	buf := make([]byte, bufSize)
	var got int64
	for {
		k, err := resp.Body.Read(buf)
		got += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("GET %s: after %d bytes: %w", url, got, err)
		}
	}
	if got != want {
		return fmt.Errorf("GET %s: %d bytes, want %d", url, got, want)
	}
	return nil
}
