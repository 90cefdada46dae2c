package checks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// The TURN overlay kinds (turn_allocate, dtls_handshake, overlay_echo)
// reuse the overlay's stage names (docs/protocols/turn-overlay.md §3.4), so a failing check names
// the same stage tunnel-client would log.

// turnTarget is the TURN leg shared by turn_allocate and overlay_echo:
// credentials from a provider link, or a server with a static user.
type turnTarget struct {
	Provider   string
	Link       probe.Secret
	RESTSecret probe.Secret
	Server     string
	Username   probe.Secret
	Password   probe.Secret
	Transport  string

	// cached is the last resolution, reused until it is past 80 % of its
	// TTL as tunnel-client does; so probe serve adds fresh turn-rest
	// credentials to the (never shrinking) redactor once per rotation,
	// not once per run.
	mu     sync.Mutex
	cached *turnprovider.Resolution
}

// validate checks that exactly one way of getting credentials is set.
func (t *turnTarget) validate() error {
	switch t.Transport {
	case "":
		t.Transport = "udp"
	case "udp", "tcp":
	default:
		return probe.ParamErrorf("transport", "expected udp or tcp, got %q", t.Transport)
	}
	viaProvider := t.Provider != "" || t.Link.IsSet()
	viaServer := t.Server != "" || t.Username.IsSet() || t.Password.IsSet()
	switch {
	case viaProvider && viaServer:
		return probe.ParamErrorf("server", "set either provider and link, or server with username and password, not both")
	case viaProvider:
		if t.Provider == "" {
			return probe.ParamErrorf("provider", "missing: one of %s", strings.Join(turnprovider.Names(), ", "))
		}
		if _, err := turnprovider.Lookup(t.Provider); err != nil {
			return probe.ParamErrorf("provider", "%w", err)
		}
		if !t.Link.IsSet() {
			return probe.ParamErrorf("link", "missing: the provider link, e.g. generic-turn://USER:PASS@HOST:PORT (link_env or link_file keep it out of the config)")
		}
		if strings.EqualFold(t.Provider, "turn-rest") && !t.RESTSecret.IsSet() {
			return probe.ParamErrorf("turn_rest_secret", "missing: turn-rest needs the shared secret (turn_rest_secret_file or turn_rest_secret_env)")
		}
	case viaServer:
		if _, _, err := net.SplitHostPort(t.Server); err != nil {
			return probe.ParamErrorf("server", "expected the TURN server's host:port, got %q", t.Server)
		}
		if !t.Username.IsSet() {
			return probe.ParamErrorf("username", "missing: the TURN username (username_env or username_file)")
		}
		if !t.Password.IsSet() {
			return probe.ParamErrorf("password", "missing: the TURN password (password_env or password_file)")
		}
	default:
		return probe.ParamErrorf("provider", "missing: set provider and link (one of %s), or server, username and password", strings.Join(turnprovider.Names(), ", "))
	}
	if t.RESTSecret.IsSet() && !strings.EqualFold(t.Provider, "turn-rest") {
		return probe.ParamErrorf("turn_rest_secret", "only used with provider turn-rest")
	}
	return nil
}

// resolve returns the TURN credentials, adds them to red, so that neither
// the username nor the password can reach output, and records where they
// lead in res's details.
func (t *turnTarget) resolve(ctx context.Context, red *redact.Redactor, res *probe.Result) (*turnprovider.Resolution, error) {
	end := res.Begin(overlay.StageProviderResolve)
	defer end()
	r, err := t.credentials(ctx, red)
	if err != nil {
		return nil, err
	}
	res.Detail("provider", r.Provider)
	res.Detail("turn_addr", r.Address)
	res.Detail("transport", t.Transport)
	return r, nil
}

func (t *turnTarget) credentials(ctx context.Context, red *redact.Redactor) (*turnprovider.Resolution, error) {
	if t.Server != "" {
		r := &turnprovider.Resolution{Provider: "static", Address: t.Server, Username: t.Username.Value, Password: t.Password.Value, ResolvedAt: time.Now()}
		red.Add("turn-username", r.Username)
		red.Add("turn-password", r.Password)
		return r, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cached != nil && !t.cached.Stale(time.Now()) {
		return t.cached, nil
	}
	r, err := turnprovider.Resolve(ctx, t.Provider, turnprovider.Request{Link: t.Link.Value, RESTSecret: t.RESTSecret.Value})
	if err != nil {
		return nil, err
	}
	red.Add("turn-username", r.Username)
	red.Add("turn-password", r.Password)
	t.cached = r
	return r, nil
}

// allocate dials the TURN server over transport (stage turn_dial) and
// allocates a relay (stage turn_allocate), as tunnel-client does (docs/protocols/turn-overlay.md §2.1).
func allocate(ctx context.Context, cr *turnprovider.Resolution, transport string, res *probe.Result) (*turndial.Allocation, string, error) {
	cfg := turndial.Config{Address: cr.Address, Username: cr.Username, Password: cr.Password, Transport: transport}
	end := res.Begin(overlay.StageTURNDial)
	conn, err := turndial.Dial(ctx, cfg)
	end()
	if err != nil {
		return nil, overlay.StageTURNDial, err
	}
	end = res.Begin(overlay.StageTURNAllocate)
	defer end()
	a, err := turndial.Allocate(ctx, conn, cfg)
	if err != nil {
		return nil, overlay.StageTURNAllocate, err
	}
	return a, "", nil
}

// failResolve maps a provider error onto the check's result.
func failResolve(res probe.Result, err error) probe.Result {
	var se *turnprovider.StageError
	if errors.Is(err, turnprovider.ErrNotImplemented) || errors.Is(err, turnprovider.ErrChallengeRequired) ||
		errors.As(err, &se) && se.Code == turnprovider.CodeRequestFailed {
		res.Status = probe.Unknown
	}
	return res.Fail(overlay.StageProviderResolve, err)
}

// ---- turn_allocate ----

type turnAllocateParams struct {
	Provider   string       `yaml:"provider"`         // generic-turn, turn-rest or vk (with link)
	Link       probe.Secret `yaml:"link"`             // provider link (a generic-turn link holds the password)
	RESTSecret probe.Secret `yaml:"turn_rest_secret"` // turn-rest shared secret
	Server     string       `yaml:"server"`           // TURN host:port (instead of provider+link)
	Username   probe.Secret `yaml:"username"`         // static TURN user (with server)
	Password   probe.Secret `yaml:"password"`         // static TURN password (with server)
	Transport  string       `yaml:"transport"`        // udp (default) or tcp
}

func (p *turnAllocateParams) target() *turnTarget {
	return &turnTarget{Provider: p.Provider, Link: p.Link, RESTSecret: p.RESTSecret, Server: p.Server,
		Username: p.Username, Password: p.Password, Transport: p.Transport}
}

func turnAllocateKind() probe.Kind {
	return probe.Kind{
		Name:    "turn_allocate",
		Summary: "resolve TURN credentials (provider link or static user), Allocate over udp|tcp, report the relayed address",
		Example: `- name: turn-lab
  kind: turn_allocate
  provider: generic-turn   # or turn-rest (with turn_rest_secret_file); or server+username+password
  link_env: PROBE_TURN_LINK   # generic-turn://USER:PASS@HOST:PORT (holds the password: keep it out of YAML)
  transport: udp         # TURN over udp or tcp
  critical: 2s`,
		Params: func() any { return &turnAllocateParams{Transport: "udp"} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &turnAllocate{t: p.(*turnAllocateParams).target(), red: env.Redactor}
			if err := c.t.validate(); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type turnAllocate struct {
	t   *turnTarget
	red *redact.Redactor
}

func (c *turnAllocate) Run(ctx context.Context) probe.Result {
	var res probe.Result
	cr, err := c.t.resolve(ctx, c.red, &res)
	if err != nil {
		return failResolve(res, err)
	}
	a, stage, err := allocate(ctx, cr, c.t.Transport, &res)
	if err != nil {
		return res.Fail(stage, err)
	}
	defer a.Close()
	relayed := a.RelayAddr()
	res.Detail("relayed_addr", relayed)
	res.Message = fmt.Sprintf("relay %s allocated on %s over %s (provider %s) in %s",
		relayed, cr.Address, c.t.Transport, cr.Provider, ms(total(res.Stages)))
	return res
}

// ---- dtls_handshake ----

// peerTarget is the tunnel-server side shared by dtls_handshake and
// overlay_echo.
type peerTarget struct {
	Peer        string
	PSK         probe.Secret
	PSKIdentity string
	Compat      bool
}

// options validates the keys and returns the DTLS client profile and its
// name (psk or compat).
func (t *peerTarget) options() ([]dtls.ClientOption, string, error) {
	if _, _, err := net.SplitHostPort(t.Peer); err != nil {
		return nil, "", probe.ParamErrorf("peer", "expected tunnel-server's host:port, got %q", t.Peer)
	}
	var p turndial.ClientProfile
	switch {
	case t.PSK.IsSet() && t.Compat:
		return nil, "", probe.ParamErrorf("compat_unauthenticated", "set either psk or compat_unauthenticated, not both")
	case t.Compat:
		p.Compat = true
	case !t.PSK.IsSet():
		return nil, "", probe.ParamErrorf("psk", "missing: tunnel-server's pre-shared key (psk_file or psk_env), or compat_unauthenticated: true")
	default:
		id, key, err := overlay.ParseClientKey(t.PSK.Value)
		if err != nil {
			return nil, "", probe.ParamErrorf("psk", "%w", err)
		}
		if id == "" {
			id = t.PSKIdentity
		}
		if id == "" {
			id = overlay.DefaultIdentity
		}
		t.PSKIdentity = id
		p.Identity, p.Key = id, key
	}
	opts, err := turndial.ClientOptions(p)
	if err != nil {
		return nil, "", err
	}
	return opts, p.Name(), nil
}

// handshake runs the DTLS client over pc to peer (stage dtls_handshake).
func handshake(ctx context.Context, pc net.PacketConn, peer net.Addr, opts []dtls.ClientOption, profile, identity string) (*dtls.Conn, error) {
	dc, err := turndial.Handshake(ctx, pc, peer, opts)
	if err != nil {
		hint := "is tunnel-server running there, reachable, and "
		if profile == "psk" {
			hint += fmt.Sprintf("does it know identity %q with this key?", identity)
		} else {
			hint += "started with --compat-unauthenticated?"
		}
		return nil, fmt.Errorf("%s handshake with %s: %w (%s)", profile, peer, err, hint)
	}
	return dc, nil
}

type dtlsHandshakeParams struct {
	Peer        string       `yaml:"peer"`                   // tunnel-server host:port (required)
	PSK         probe.Secret `yaml:"psk"`                    // base64 key, or "<identity> <base64 key>"
	PSKIdentity string       `yaml:"psk_identity"`           // default "default"
	Compat      bool         `yaml:"compat_unauthenticated"` // the prototype's unauthenticated profile instead of a PSK
}

func dtlsHandshakeKind() probe.Kind {
	return probe.Kind{
		Name:    "dtls_handshake",
		Summary: "DTLS handshake with a tunnel-server directly over UDP (PSK profile, or compat_unauthenticated)",
		Example: `- name: tunnel-server-dtls
  kind: dtls_handshake
  peer: tunnel-server.example:56000
  psk_file: /etc/warren/probe-psk   # base64 key, or one "<identity> <base64 key>" line
  psk_identity: default
  critical: 2s`,
		Params: func() any { return &dtlsHandshakeParams{PSKIdentity: overlay.DefaultIdentity} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			pp := p.(*dtlsHandshakeParams)
			c := &dtlsHandshake{t: peerTarget{Peer: pp.Peer, PSK: pp.PSK, PSKIdentity: pp.PSKIdentity, Compat: pp.Compat}}
			var err error
			if c.opts, c.profile, err = c.t.options(); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type dtlsHandshake struct {
	t       peerTarget
	opts    []dtls.ClientOption
	profile string
}

func (c *dtlsHandshake) Run(ctx context.Context) probe.Result {
	var res probe.Result
	res.Detail("profile", c.profile)
	end := res.Begin(overlay.StageDTLSHandshake)
	peer, err := net.ResolveUDPAddr("udp", c.t.Peer)
	if err != nil {
		end()
		return res.Fail(overlay.StageDTLSHandshake, fmt.Errorf("resolve peer %s: %w", c.t.Peer, err))
	}
	// A connected socket turns an ICMP port unreachable into a read error,
	// so a stopped tunnel-server fails fast instead of at the timeout.
	uc, err := net.DialUDP("udp", nil, peer)
	if err != nil {
		end()
		return res.Fail(overlay.StageDTLSHandshake, err)
	}
	dc, err := handshake(ctx, connectedPacketConn{uc}, peer, c.opts, c.profile, c.t.PSKIdentity)
	end()
	if err != nil {
		uc.Close()
		return res.Fail(overlay.StageDTLSHandshake, err)
	}
	defer dc.Close()
	if st, ok := dc.ConnectionState(); ok {
		res.Detail("cipher_suite", dtls.CipherSuiteID(st.CipherSuiteID).String())
	}
	res.Message = fmt.Sprintf("%s handshake with %s in %s", c.profile, c.t.Peer, ms(total(res.Stages)))
	return res
}

// connectedPacketConn lets dtls use a connected UDP socket (WriteTo on a
// connected socket is an error; Write is not).
type connectedPacketConn struct{ *net.UDPConn }

func (c connectedPacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return c.UDPConn.Write(b) }

func (c connectedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.UDPConn.Read(b)
	return n, c.UDPConn.RemoteAddr(), err
}

// ---- overlay_echo ----

type overlayEchoParams struct {
	Provider    string       `yaml:"provider"`               // generic-turn, turn-rest or vk (with link)
	Link        probe.Secret `yaml:"link"`                   // provider link
	RESTSecret  probe.Secret `yaml:"turn_rest_secret"`       // turn-rest shared secret
	Server      string       `yaml:"server"`                 // TURN host:port (instead of provider+link)
	Username    probe.Secret `yaml:"username"`               // static TURN user (with server)
	Password    probe.Secret `yaml:"password"`               // static TURN password (with server)
	Transport   string       `yaml:"transport"`              // TURN over udp (default) or tcp
	Peer        string       `yaml:"peer"`                   // tunnel-server host:port as reachable from the TURN relay (required)
	PSK         probe.Secret `yaml:"psk"`                    // base64 key, or "<identity> <base64 key>"
	PSKIdentity string       `yaml:"psk_identity"`           // default "default"
	Compat      bool         `yaml:"compat_unauthenticated"` // the prototype's unauthenticated profile
	Bytes       int          `yaml:"bytes"`                  // size of the nonce datagram; default 32
}

func overlayEchoKind() probe.Kind {
	return probe.Kind{
		Name:    "overlay_echo",
		Summary: "TURN allocation, DTLS to a tunnel-server whose upstream is a UDP echo, a random datagram must come back",
		Example: `- name: overlay-echo
  kind: overlay_echo
  provider: generic-turn
  link_env: PROBE_TURN_LINK
  transport: udp
  peer: tunnel-server.example:56000   # as reachable from the TURN relay
  psk_env: PROBE_OVERLAY_PSK          # or psk_file, or compat_unauthenticated: true
  bytes: 32              # nonce datagram size (tunnel-server --connect must be a UDP echo)
  timeout: 15s
  critical: 5s`,
		Params: func() any {
			return &overlayEchoParams{Transport: "udp", PSKIdentity: overlay.DefaultIdentity, Bytes: 32}
		},
		New: func(p any, env probe.Env) (probe.Check, error) {
			pp := p.(*overlayEchoParams)
			c := &overlayEcho{
				t: &turnTarget{Provider: pp.Provider, Link: pp.Link, RESTSecret: pp.RESTSecret, Server: pp.Server,
					Username: pp.Username, Password: pp.Password, Transport: pp.Transport},
				peer:  peerTarget{Peer: pp.Peer, PSK: pp.PSK, PSKIdentity: pp.PSKIdentity, Compat: pp.Compat},
				bytes: pp.Bytes, red: env.Redactor,
			}
			if err := c.t.validate(); err != nil {
				return nil, err
			}
			var err error
			if c.opts, c.profile, err = c.peer.options(); err != nil {
				return nil, err
			}
			if c.bytes < 16 || c.bytes > 1200 {
				return nil, probe.ParamErrorf("bytes", "must be 16-1200 (one datagram under the overlay MTU), got %d", c.bytes)
			}
			return c, nil
		},
	}
}

type overlayEcho struct {
	t       *turnTarget
	peer    peerTarget
	opts    []dtls.ClientOption
	profile string
	bytes   int
	red     *redact.Redactor
}

func (c *overlayEcho) Run(ctx context.Context) probe.Result {
	var res probe.Result
	res.Detail("profile", c.profile)
	cr, err := c.t.resolve(ctx, c.red, &res)
	if err != nil {
		return failResolve(res, err)
	}
	peer, err := net.ResolveUDPAddr("udp", c.peer.Peer)
	if err != nil {
		return res.Fail(overlay.StagePeerSetup, fmt.Errorf("resolve peer %s: %w", c.peer.Peer, err))
	}
	a, stage, err := allocate(ctx, cr, c.t.Transport, &res)
	if err != nil {
		return res.Fail(stage, err)
	}
	defer a.Close()
	relayed := a.RelayAddr()
	res.Detail("relayed_addr", relayed)

	end := res.Begin(overlay.StageDTLSHandshake)
	dc, err := handshake(ctx, a.Relay, peer, c.opts, c.profile, c.peer.PSKIdentity)
	end()
	if err != nil {
		return res.Fail(overlay.StageDTLSHandshake, fmt.Errorf("via relay %s: %w", relayed, err))
	}
	defer dc.Close()

	end = res.Begin(overlay.StageForwardingLoop)
	err = echo(ctx, dc, c.bytes)
	end()
	if err != nil {
		return res.Fail(overlay.StageForwardingLoop, fmt.Errorf("echo through %s via relay %s: %w (tunnel-server --connect must point at a UDP echo)", c.peer.Peer, relayed, err))
	}
	res.Detail("bytes", fmt.Sprint(c.bytes))
	res.Message = fmt.Sprintf("%d-byte nonce echoed through TURN %s (relay %s, %s) and %s tunnel-server %s in %s",
		c.bytes, cr.Address, relayed, c.t.Transport, c.profile, c.peer.Peer, ms(total(res.Stages)))
	return res
}

// echo sends a random nonce and waits for it to come back, resending it
// every second (a datagram may be lost) until ctx ends.
func echo(ctx context.Context, dc *dtls.Conn, size int) error {
	nonce := make([]byte, size)
	_, _ = rand.Read(nonce)
	stop := context.AfterFunc(ctx, func() { dc.SetReadDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, 1600)
	for attempt := 1; ; attempt++ {
		if _, err := dc.Write(nonce); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		dc.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := dc.Read(buf)
			if ctx.Err() != nil {
				return fmt.Errorf("no echo of the %d-byte nonce after %d sends: %w", size, attempt, ctx.Err())
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break // resend
			}
			if err != nil {
				return fmt.Errorf("receive: %w", err)
			}
			if string(buf[:n]) == string(nonce) {
				return nil
			}
			// Something else (a late echo of nothing we sent): keep reading.
		}
	}
}
