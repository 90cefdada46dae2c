package tunnelrelay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sys/cpu"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// Side is the end of a tunnel that dials the relay.
type Side int

const (
	// HostSide dials the host socket (an endpoint's hostRelayUri).
	HostSide Side = iota
	// ClientSide dials the client socket (an endpoint's clientRelayUri).
	ClientSide
)

// Relay protocol modes: which subprotocols Dial offers.
const (
	ModeAuto = "auto" // V2, then V1
	ModeV2   = "v2"
	ModeV1   = "v1"
)

// ErrUnknownMode is returned for a mode other than "", auto, v2 or v1.
var ErrUnknownMode = errors.New("tunnelrelay: unknown relay protocol mode")

// ErrNoTarget is returned by CheckTarget when the relay URL or tunnel id
// is missing.
var ErrNoTarget = errors.New("RelayURL and TunnelID are required")

// CheckTarget validates what tunnel-host and tunnel-client are pointed at
// alike: a relay URL, a tunnel id and a mode. It returns the mode with ""
// made ModeAuto.
func CheckTarget(relayURL, tunnelID, mode string) (string, error) {
	if relayURL == "" || tunnelID == "" {
		return "", ErrNoTarget
	}
	if mode == "" {
		return ModeAuto, nil
	}
	if _, err := Subprotocols(HostSide, mode); err != nil {
		return "", err
	}
	return mode, nil
}

// Subprotocols returns the subprotocols side offers in mode ("" is
// ModeAuto), most preferred first.
func Subprotocols(side Side, mode string) ([]string, error) {
	v2, v1 := tunnelproto.SubprotocolHostV2, tunnelproto.SubprotocolHostV1
	if side == ClientSide {
		v2, v1 = tunnelproto.SubprotocolClientV2, tunnelproto.SubprotocolClientV1
	}
	switch mode {
	case "", ModeAuto:
		return []string{v2, v1}, nil
	case ModeV2:
		return []string{v2}, nil
	case ModeV1:
		return []string{v1}, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownMode, mode)
}

// The Dev Tunnels SDKs' bounds on the two handshakes of a relay socket.
const (
	UpgradeTimeout      = 45 * time.Second // the WebSocket upgrade
	SSHHandshakeTimeout = 10 * time.Second // the SSH handshake over the socket
)

// DialConfig configures Dial.
type DialConfig struct {
	// URL is the relay URI of the tunnel's endpoint (ws, wss, http or
	// https).
	URL  string
	Side Side
	// Mode is ModeAuto (the default), ModeV2 or ModeV1.
	Mode string
	// Token is the tunnel access token (host scope for HostSide, connect
	// scope for ClientSide), sent as "Authorization: Tunnel <token>"; no
	// header if "".
	Token string
	// HTTPClient does the upgrade; default http.DefaultClient. It must have
	// no Timeout: coder/websocket refuses one.
	HTTPClient *http.Client
	// HandshakeTimeout bounds the upgrade; default 0, ctx alone.
	HandshakeTimeout time.Duration
}

// LegConfig is the SSH configuration of a relay leg: the SSH session over a
// relay WebSocket between relay-server and a host or a V2 client (not the
// end-to-end V1 session inside it). none offers dev-tunnels-ssh's "none"
// key exchange, which the official TypeScript and C# hosts and clients
// need and which skips SSH's own encryption where TLS (wss) already
// protects the socket; a peer that does not offer it gets the standard key
// exchange. Channels announce the largest packets the SSH fork allows; a
// peer with smaller ones (the Go SDK, older warren) keeps its own.
func LegConfig(none bool) ssh.Config {
	return ssh.Config{NoneKeyExchange: none, ChannelMaxPacket: ssh.MaxChannelMaxPacket}
}

// EndToEndCiphers is the cipher preference of the end-to-end V1 session
// inside a relay socket, which stays encrypted: AES-GCM first where the CPU
// has AES instructions (it is then the fastest), ChaCha20-Poly1305 first
// where it has not.
func EndToEndCiphers() []string {
	aesGCM := []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM}
	chacha := []string{ssh.CipherChaCha20Poly1305}
	ctr := []string{ssh.CipherAES128CTR, ssh.CipherAES192CTR, ssh.CipherAES256CTR}
	if hasAESInstructions {
		return slices.Concat(aesGCM, chacha, ctr)
	}
	return slices.Concat(chacha, aesGCM, ctr)
}

// EndToEndMaxPacket is the channel max packet of an end-to-end session
// that runs inside a channel of a relay leg (V1's nested session, V2
// --e2e streams): the largest payload whose sealed packet (header, padding
// and MAC included) still fits in one packet of the outer channel, which
// announces ssh.MaxChannelMaxPacket, so that each inner packet crosses the
// relay as one outer packet rather than a full one and a sliver.
const EndToEndMaxPacket = ssh.MaxChannelMaxPacket - 1024

var hasAESInstructions = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ ||
	cpu.ARM64.HasAES && cpu.ARM64.HasPMULL || cpu.S390X.HasAESGCM

// ErrNoneRefused is returned by SSHHandshake when the relay offers only the
// "none" key exchange and this side did not offer it (see NoneAllowed).
var ErrNoneRefused = errors.New("the relay offers only the unencrypted \"none\" SSH key exchange, refused on a plain ws:// connection to a non-loopback relay: use a wss:// (https) relay URL, or allow it explicitly (allow_insecure_none)")

// NoneAllowed reports whether a host or client may offer the "none" key
// exchange on the relay socket at rawURL. "none" leaves the relay leg
// without SSH encryption, so only TLS protects it: it is offered on wss://
// (and https://), on a loopback relay (localhost, 127.0.0.0/8, ::1), and
// elsewhere only if allowInsecure. Without it the standard key exchange
// encrypts the leg.
func NoneAllowed(rawURL string, allowInsecure bool) (bool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false, fmt.Errorf("tunnelrelay: relay URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "wss", "https":
		return true, nil
	case "ws", "http":
	default:
		return false, fmt.Errorf("tunnelrelay: relay URL %q: scheme %q is not ws, wss, http or https", rawURL, u.Scheme)
	}
	if allowInsecure {
		return true, nil
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true, nil
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback(), nil
}

// SSHHandshake runs an SSH client handshake over conn, a relay socket or
// a stream inside one, within cfg.Timeout (default SSHHandshakeTimeout):
// x/crypto uses that Timeout only when it dials TCP itself, so a timer
// closes conn when the handshake is stuck. On failure conn is closed.
func SSHHandshake(conn net.Conn, addr string, cfg *ssh.ClientConfig) (ssh.Conn, <-chan ssh.NewChannel, <-chan *ssh.Request, error) {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = SSHHandshakeTimeout
	}
	timer := time.AfterFunc(timeout, func() { _ = conn.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if !timer.Stop() && err == nil {
		err = errors.New("handshake timed out")
		_ = sc.Close()
	}
	if err != nil {
		_ = conn.Close()
		var ane *ssh.AlgorithmNegotiationError
		if !cfg.NoneKeyExchange && errors.As(err, &ane) && ane.What == "key exchange" && slices.Contains(ane.RequestedAlgorithms, ssh.KeyExchangeNone) {
			err = fmt.Errorf("%w (%w)", ErrNoneRefused, err)
		}
		return nil, nil, nil, err
	}
	return sc, chans, reqs, nil
}

// RefusedError is an upgrade the relay answered with a status other than
// 101 Switching Protocols.
type RefusedError struct {
	Status int
	Body   []byte // the start of the response body, at most 1 KiB
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("relay refused the WebSocket upgrade: HTTP %d %s", e.Status, http.StatusText(e.Status))
}

// SubprotocolError is an upgrade the relay accepted without one of the
// offered subprotocols. (coder/websocket already refuses a subprotocol that
// was not offered, so in practice Chosen is "".)
type SubprotocolError struct {
	Chosen  string
	Offered []string
}

func (e *SubprotocolError) Error() string {
	return fmt.Sprintf("relay chose subprotocol %q", e.Chosen)
}

// Dial opens the relay WebSocket of a tunnel's host or client, as
// docs/protocols/devtunnels.md §2.3 has it: the subprotocols of cfg.Mode
// offered, the token in the Authorization header. Its errors are a
// *RefusedError, a *SubprotocolError, or the transport's error as
// coder/websocket returns it, unwrapped, so that callers word it their way.
// The connection's Subprotocol says which version the relay chose.
func Dial(ctx context.Context, cfg DialConfig) (*wsconn.Conn, error) {
	protos, err := Subprotocols(cfg.Side, cfg.Mode)
	if err != nil {
		return nil, err
	}
	hdr := http.Header{}
	if cfg.Token != "" {
		hdr.Set("Authorization", "Tunnel "+cfg.Token)
	}
	if cfg.HandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.HandshakeTimeout)
		defer cancel()
	}
	conn, resp, err := wsconn.Dial(ctx, cfg.URL, &websocket.DialOptions{
		HTTPClient: cfg.HTTPClient, HTTPHeader: hdr, Subprotocols: protos,
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			e := &RefusedError{Status: resp.StatusCode}
			if resp.Body != nil { // coder/websocket keeps the first KiB of it
				e.Body, _ = io.ReadAll(io.LimitReader(resp.Body, 1024))
			}
			return nil, e
		}
		return nil, err
	}
	if !slices.Contains(protos, conn.Subprotocol()) {
		_ = conn.Close()
		return nil, &SubprotocolError{Chosen: conn.Subprotocol(), Offered: protos}
	}
	return conn, nil
}

// Errors of DialPort, for callers that map them to HTTP statuses.
var (
	// ErrNoHost: no host is connected for the tunnel on this relay.
	ErrNoHost = errors.New("tunnelrelay: no host connected")
	// ErrPortNotForwarded: the host has not forwarded that port.
	ErrPortNotForwarded = errors.New("tunnelrelay: port not forwarded by the host")
	// ErrV1Host: the host speaks V1, where ports are only known inside the
	// end-to-end SSH session a client runs with the host, so the relay
	// cannot open one itself.
	ErrV1Host = errors.New("tunnelrelay: host uses relay protocol V1; relay-side connections need a V2 host")
)

// DialPort opens a connection to port on the host of tunnelID, as a V2
// client's forwarded-tcpip would, for relay-side consumers: web forwarding
// and raw TCP exposure. from, if valid, is passed to the host as the
// originator address. The connection counts in the relay's metrics like a
// client's.
func (r *Relay) DialPort(ctx context.Context, tunnelID string, port uint16, from netip.AddrPort) (net.Conn, error) {
	h := r.host(tunnelID)
	if h == nil {
		return nil, ErrNoHost
	}
	if !h.v2 {
		return nil, ErrV1Host
	}
	if !h.hasPort(uint32(port)) {
		return nil, ErrPortNotForwarded
	}
	req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: uint32(port)}
	if from.IsValid() {
		req.OriginatorIP, req.OriginatorPort = from.Addr().String(), uint32(from.Port())
	}
	type opened struct {
		ch   ssh.Channel
		reqs <-chan *ssh.Request
		err  error
	}
	done := make(chan opened, 1)
	go func() {
		ch, reqs, err := h.sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, req.Marshal())
		done <- opened{ch, reqs, err}
	}()
	select {
	case o := <-done:
		if o.err != nil {
			return nil, fmt.Errorf("tunnelrelay: host refused port %d: %w", port, o.err)
		}
		ssh.RefuseRequests(o.ch, o.reqs)
		r.m.forwarded.WithLabelValues(tunnelproto.ChannelForwardedTCPIP).Inc()
		cc := newChannelConn(o.ch, r.m, h.conn.RemoteAddr(), port)
		if n, ok := o.ch.(dataNotifier); ok {
			return &notifyChannelConn{cc, n}, nil
		}
		return cc, nil
	case <-ctx.Done():
		// The open may still succeed: close what it yields.
		go func() {
			if o := <-done; o.err == nil {
				_ = o.ch.Close()
				ssh.RefuseRequests(o.ch, o.reqs)
			}
		}()
		return nil, ctx.Err()
	}
}

// channelConn is an SSH channel as a net.Conn. Deadlines are not
// supported: SSH channels have none, and the relay's consumers (an HTTP
// transport, a byte splice) do not set them.
type channelConn struct {
	ssh.Channel
	m      *metrics
	remote net.Addr
	local  net.Addr
}

// ErrNoDeadlines is returned by a relay connection's Set*Deadline methods.
var ErrNoDeadlines = errors.New("tunnelrelay: deadlines are not supported on relay connections")

func newChannelConn(ch ssh.Channel, m *metrics, hostAddr net.Addr, port uint16) *channelConn {
	return &channelConn{Channel: ch, m: m, remote: portAddr{hostAddr, port}, local: hostAddr}
}

func (c *channelConn) Read(p []byte) (int, error) {
	n, err := c.Channel.Read(p)
	c.m.bytesFromHost.Add(float64(n))
	return n, err
}

func (c *channelConn) Write(p []byte) (int, error) {
	n, err := c.Channel.Write(p)
	c.m.bytesToHost.Add(float64(n))
	return n, err
}

// dataNotifier is what sshfork's channels offer a copy loop that should
// hold no goroutine while a channel is idle (see pipe's notify.go).
type dataNotifier interface {
	ConsumeData(fn func(p []byte) error) (int, error)
	SetDataNotify(fn func())
	ConsumeDataNow(fn func(p []byte) error) (int, error)
	// SetDataNotifyInline: the copy runs on the host connection's reader.
	SetDataNotifyInline(fn func())
}

// notifyChannelConn is a channelConn that passes its channel's
// dataNotifier on, so that pipe.Join (raw TCP exposure) does not park a
// goroutine on the channel of an idle connection.
type notifyChannelConn struct {
	*channelConn
	n dataNotifier
}

func (c *notifyChannelConn) ConsumeData(fn func(p []byte) error) (int, error) {
	n, err := c.n.ConsumeData(fn)
	c.m.bytesFromHost.Add(float64(n))
	return n, err
}

func (c *notifyChannelConn) ConsumeDataNow(fn func(p []byte) error) (int, error) {
	n, err := c.n.ConsumeDataNow(fn)
	if n > 0 {
		c.m.bytesFromHost.Add(float64(n))
	}
	return n, err
}

func (c *notifyChannelConn) SetDataNotify(fn func()) { c.n.SetDataNotify(fn) }

func (c *notifyChannelConn) SetDataNotifyInline(fn func()) { c.n.SetDataNotifyInline(fn) }

func (c *channelConn) LocalAddr() net.Addr              { return c.local }
func (c *channelConn) RemoteAddr() net.Addr             { return c.remote }
func (c *channelConn) SetDeadline(time.Time) error      { return ErrNoDeadlines }
func (c *channelConn) SetReadDeadline(time.Time) error  { return ErrNoDeadlines }
func (c *channelConn) SetWriteDeadline(time.Time) error { return ErrNoDeadlines }

// portAddr names a host's port as seen through the relay.
type portAddr struct {
	host net.Addr
	port uint16
}

func (a portAddr) Network() string { return "tunnel" }
func (a portAddr) String() string  { return fmt.Sprintf("%s/port/%d", a.host, a.port) }
