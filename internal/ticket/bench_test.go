package ticket

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"testing"
)

const benchSize = 64 << 20

// patternReader yields n bytes from a fixed buffer without allocating.
type patternReader struct {
	buf []byte
	n   int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	k := copy(b, p.buf)
	p.n -= int64(k)
	return k, nil
}

var benchPattern = bytes.Repeat([]byte("warren relay benchmark data\n"), 2048)

// BenchmarkRelay moves benchSize bytes per iteration PUT→GET through a real
// loopback server with Go clients. Compare with BenchmarkDirectTCP.
func BenchmarkRelay(b *testing.B) {
	e := newEnv(b)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	for b.Loop() {
		tk := e.mint(MintRequest{})
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("GET", e.url(tk), nil)
			req.Header.Set("Authorization", "Bearer "+tk)
			resp, err := client.Do(req)
			if err != nil {
				done <- err
				return
			}
			defer resp.Body.Close()
			n, err := io.Copy(io.Discard, resp.Body)
			if err == nil && n != benchSize {
				err = io.ErrUnexpectedEOF
			}
			done <- err
		}()
		req, _ := http.NewRequestWithContext(context.Background(), "PUT", e.url(tk), &patternReader{buf: benchPattern, n: benchSize})
		req.ContentLength = benchSize
		req.Header.Set("Authorization", "Bearer "+tk)
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("PUT %d", resp.StatusCode)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDirectTCP copies the same bytes over one direct loopback TCP
// connection per iteration: the floor the relay is measured against.
func BenchmarkDirectTCP(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	received := make(chan int64)
	go func() {
		buf := make([]byte, copyBufSize)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n, _ := io.CopyBuffer(io.Discard, c, buf)
			c.Close()
			received <- n
		}
	}()
	b.SetBytes(benchSize)
	b.ReportAllocs()
	buf := make([]byte, copyBufSize)
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(c, &patternReader{buf: benchPattern, n: benchSize}, buf); err != nil {
			b.Fatal(err)
		}
		c.Close()
		if n := <-received; n != benchSize {
			b.Fatalf("received %d", n)
		}
	}
}
