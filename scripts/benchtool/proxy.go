package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sync"
	"time"
)

// The RTT floor reference: chains of separate OS processes each running a
// minimal TCP proxy (accept, dial the next hop, two goroutines copying).
// On a VM every process hop costs at least the wakeup of an idle vCPU, so
// a path through N processes cannot be faster than N such hops; warren's
// paths (raw TCP: 2 processes, V2 and V1: 3) are compared with the chain
// of as many processes.
//
// The proxy is this same binary run as `benchtool __proxy NEXT`
// (proxyArg): it prints "proxy listening ADDR" and serves until killed.

const proxyArg = "__proxy"

// proxyBuf is the proxy's copy buffer: the size of warren's pipe buffers.
const proxyBuf = 64 << 10

// runProxy serves the proxy subcommand: forward every connection to next,
// until accepting fails.
func runProxy(next string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("proxy listening %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			up, err := net.DialTimeout("tcp", next, 30*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			var wg sync.WaitGroup
			wg.Go(func() { copyHalf(up, c) })
			copyHalf(c, up)
			wg.Wait()
		}()
	}
}

// copyHalf copies src to dst with read and write calls in user space, as
// warren's processes do (a bare io.Copy between two TCP connections would
// splice on Linux, which no framing relay can), then half-closes dst.
func copyHalf(dst, src net.Conn) {
	buf := make([]byte, proxyBuf)
	_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

var proxyListeningRE = regexp.MustCompile(`proxy listening (\S+)`)

// startProxyChain starts n proxy processes in a chain ending at target and
// returns them (first hop first) with the address of the first.
func (ps *procs) startProxyChain(ctx context.Context, n int, target string) ([]*proc, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	chain := make([]*proc, n)
	next := target
	for i := n - 1; i >= 0; i-- {
		p, err := ps.startPath(fmt.Sprintf("proxy%d", i+1), self, nil, proxyArg, next)
		if err != nil {
			return nil, "", err
		}
		if next, err = p.out.wait(ctx, proxyListeningRE, 30*time.Second); err != nil {
			return nil, "", fmt.Errorf("proxy: %w", err)
		}
		chain[i] = p
	}
	return chain, next, nil
}
