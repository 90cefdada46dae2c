package checks

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/transport/backoff"
)

type tunnelParams struct {
	URL    string       `yaml:"url"`     // relay-server base URL (required)
	CAFile string       `yaml:"ca_file"` // PEM bundle to trust; default the system roots
	Tunnel string       `yaml:"tunnel"`  // tunnel id or name (required)
	Port   int          `yaml:"port"`    // tunnel port to reach (required)
	Token  probe.Secret `yaml:"token"`   // connect-scope tunnel token; or api_key
	APIKey probe.Secret `yaml:"api_key"` // API key with the tunnels scope
	Mode   string       `yaml:"mode"`    // auto (V2, else V1), v2 or v1; default auto
	// Send is written after connecting; default (with no expect) a random
	// nonce line, which must come back (an echo service).
	Send string `yaml:"send"`
	// Expect is text that must appear in what the port sends back within
	// the timeout (a banner such as "SSH-2.0-"); default: the echo of send.
	Expect string `yaml:"expect"`
	// PortWait is how long after the relay session is up the host may take
	// to announce the port; default 5s.
	PortWait time.Duration `yaml:"port_wait"`
}

func tunnelKind() probe.Kind {
	return probe.Kind{
		Name:    "tunnel",
		Summary: "end to end through the relay: connect to a tunnel's port as a client and exchange bytes (echo or banner)",
		Example: `- name: tunnel-echo
  kind: tunnel
  url: https://relay.example
  tunnel: my-tunnel
  port: 7000
  api_key_file: /etc/warren/probe-api-key   # or token_file: a connect token
  mode: auto
  send: ""               # default: a random nonce that must be echoed back
  expect: ""             # or text that must arrive, e.g. "SSH-2.0-"
  port_wait: 5s
  timeout: 15s
  warning: 1s
  critical: 5s`,
		Params: func() any { return &tunnelParams{Mode: "auto", PortWait: 5 * time.Second} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &tunnelCheck{p: *p.(*tunnelParams), log: env.Logger}
			if c.log == nil {
				c.log = slog.New(slog.DiscardHandler)
			}
			u, err := relayTarget{URL: c.p.URL, CAFile: c.p.CAFile}.validate()
			if err != nil {
				return nil, err
			}
			c.base = strings.TrimRight(u.String(), "/")
			switch {
			case c.p.Tunnel == "":
				return nil, probe.ParamErrorf("tunnel", "missing: the tunnel id or name")
			case c.p.Port <= 0 || c.p.Port > 65535:
				return nil, probe.ParamErrorf("port", "expected a port number 1-65535, got %d", c.p.Port)
			case !c.p.Token.IsSet() && !c.p.APIKey.IsSet():
				return nil, probe.ParamErrorf("token", "no credential: set token (token_file, token_env) or api_key (api_key_file, api_key_env)")
			case c.p.PortWait <= 0:
				return nil, probe.ParamErrorf("port_wait", "must be positive")
			}
			if _, err := subprotocols(c.p.Mode); err != nil {
				return nil, err
			}
			if c.hc, err = httpClient(c.p.CAFile); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type tunnelCheck struct {
	p    tunnelParams
	base string
	hc   *http.Client
	log  *slog.Logger
}

func (c *tunnelCheck) Run(ctx context.Context) probe.Result {
	var res probe.Result
	port := uint16(c.p.Port)
	// Preflight: read the tunnel as the client will, so DNS, refused
	// connections, bad credentials, unknown tunnels and a missing host are
	// reported as such instead of as a timeout while the client retries.
	end := res.Begin("lookup")
	t, err := c.lookup(ctx)
	end()
	if err != nil {
		return res.Fail(stageOf(err, "lookup"), err)
	}
	if !hasHost(t) {
		return res.Failf("lookup", "tunnel %s: no host is connected (is tunnel-host running?)", c.p.Tunnel)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	capture := newErrCapture(c.log)
	cl, err := tunnelclient.New(tunnelclient.Config{
		RelayURL:     c.base,
		TunnelID:     c.p.Tunnel,
		APIKey:       c.p.APIKey.Value,
		ConnectToken: c.p.Token.Value,
		Mode:         c.p.Mode,
		Bind:         "127.0.0.1",
		// The probed port on an ephemeral local port: never collides with
		// the service itself when probe runs on the host's machine.
		PortMap:    map[uint16]uint16{port: 0},
		HTTPClient: c.hc,
		// Retry quickly within the check's timeout; the last error is
		// what the operator sees.
		Backoff: &backoff.Backoff{Initial: 100 * time.Millisecond, Max: time.Second, Multiplier: 2, Jitter: 0.5},
	}, slog.New(capture))
	if err != nil {
		return res.Fail("config", err)
	}
	events := make(chan tunnelclient.Event, 16)
	runErr := make(chan error, 1)
	go func() { runErr <- cl.Run(ctx, events) }()
	defer func() {
		cancel()
		// Drain until Run has returned so its goroutines end with the check.
		for {
			select {
			case <-events:
			case <-runErr:
				return
			}
		}
	}()

	endConnect := res.Begin("connect")
	var (
		addr      string
		lastErr   error
		announced []string
		portTimer <-chan time.Time
	)
	for addr == "" {
		select {
		case ev := <-events:
			switch ev.Kind {
			case tunnelclient.EventConnected:
				res.Detail("subprotocol", ev.Addr)
				portTimer = time.After(c.p.PortWait)
			case tunnelclient.EventDisconnected:
				lastErr = ev.Err
			case tunnelclient.EventReady:
				switch {
				case ev.RemotePort == port && ev.Err != nil:
					return res.Failf("connect", "port %d: cannot open the local listener: %v", port, ev.Err)
				case ev.RemotePort == port:
					addr = ev.Addr
				default:
					announced = append(announced, fmt.Sprint(ev.RemotePort))
				}
			}
		case err := <-runErr:
			runErr <- err // for the deferred drain
			if err == nil {
				err = ctx.Err()
			}
			return res.Fail(stageOf(err, "connect"), explainClientErr(err, c.p.Tunnel))
		case <-portTimer:
			sort.Strings(announced)
			list := "none"
			if len(announced) > 0 {
				list = strings.Join(announced, ", ")
			}
			return res.Failf("connect", "tunnel %s is connected but its host does not forward port %d (ports: %s)", c.p.Tunnel, port, list)
		case <-ctx.Done():
			if lastErr == nil && capture.lastErr() != "" {
				lastErr = errors.New(capture.lastErr())
			}
			if lastErr != nil {
				return res.Fail(stageOf(lastErr, "connect"), fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr))
			}
			return res.Fail("connect", fmt.Errorf("%w waiting for the relay session and port %d", ctx.Err(), port))
		}
	}
	endConnect()

	endEx := res.Begin("exchange")
	n, err := c.exchange(ctx, addr)
	endEx()
	if err != nil {
		return res.Fail("exchange", fmt.Errorf("port %d: %w", port, err))
	}
	res.Detail("bytes", fmt.Sprint(n))
	what := fmt.Sprintf("echo of %d bytes", n)
	if c.p.Expect != "" {
		what = fmt.Sprintf("%q received", c.p.Expect)
	}
	res.Message = fmt.Sprintf("tunnel %s port %d: %s in %s", c.p.Tunnel, port, what, ms(total(res.Stages)))
	return res
}

// exchange dials the local listener and does the send/expect. It returns
// the number of bytes compared.
func (c *tunnelCheck) exchange(ctx context.Context, addr string) (int, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	send, expect := []byte(c.p.Send), []byte(c.p.Expect)
	if len(expect) == 0 {
		if len(send) == 0 {
			var nonce [16]byte
			_, _ = rand.Read(nonce[:])
			send = []byte("warren-probe " + hex.EncodeToString(nonce[:]) + "\n")
		}
		expect = send
	}
	if len(send) > 0 {
		if _, err := conn.Write(send); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
	}
	const limit = 64 << 10
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, expect) {
		n, err := conn.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			// The host answers a port it cannot reach by closing the
			// channel: the local connection ends with EOF, or a reset
			// when our bytes were still unread.
			closed := errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
			switch {
			case closed && len(got) == 0:
				return 0, errors.New("the tunnel closed the connection without sending anything (is the service behind the port up? the host could not connect to it)")
			case closed:
				return 0, fmt.Errorf("connection closed after %d bytes without %s", len(got), describeExpect(c.p.Expect, expect))
			case ctx.Err() != nil:
				return 0, fmt.Errorf("%w after %d bytes without %s", ctx.Err(), len(got), describeExpect(c.p.Expect, expect))
			}
			return 0, fmt.Errorf("read: %w", err)
		}
		if len(got) > limit {
			return 0, fmt.Errorf("%d bytes without %s", len(got), describeExpect(c.p.Expect, expect))
		}
	}
	return len(expect), nil
}

func describeExpect(configured string, expect []byte) string {
	if configured != "" {
		return fmt.Sprintf("%q", configured)
	}
	return fmt.Sprintf("the echo of the %d bytes sent", len(expect))
}

// explainClientErr turns the tunnel client's fatal errors into advice.
func explainClientErr(err error, tunnel string) error {
	switch {
	case errors.Is(err, tunnelclient.ErrRefused):
		return fmt.Errorf("tunnel %s: credentials refused (wrong or expired token or API key?): %w", tunnel, err)
	case errors.Is(err, tunnelclient.ErrTunnelNotFound):
		return fmt.Errorf("tunnel %s: no such tunnel on the relay: %w", tunnel, err)
	case errors.Is(err, tunnelclient.ErrNoHost):
		return fmt.Errorf("tunnel %s: no host is connected (is tunnel-host running?): %w", tunnel, err)
	}
	return err
}

// lookup reads the tunnel with the configured credential.
func (c *tunnelCheck) lookup(ctx context.Context) (*tunnelproto.Tunnel, error) {
	cfg := apiclient.Config{BaseURL: c.base, HTTPClient: c.hc}
	if c.p.APIKey.IsSet() {
		cfg.Key = c.p.APIKey.Value
	} else {
		tok := c.p.Token.Value
		cfg.Token = func() string { return tok }
	}
	return getTunnel(ctx, cfg, c.p.Tunnel)
}

func hasHost(t *tunnelproto.Tunnel) bool {
	for _, ep := range t.Endpoints {
		if ep.ClientRelayURI != "" {
			return true
		}
	}
	return false
}
