package turnclient

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/warrenhq/warren/internal/transport/backoff"
	"github.com/warrenhq/warren/internal/transport/turndial"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// DefaultAllocationCheck is Config.AllocationCheck's default: the same
// cadence as pion's own channel-binding check.
const DefaultAllocationCheck = 30 * time.Second

// Config configures a Client.
type Config struct {
	// Provider is the provider name (generic-turn, turn-rest, vk). Required.
	Provider string
	// Link is the provider link. Required.
	Link string
	// RESTSecret is turn-rest's shared secret.
	RESTSecret string
	// Solver answers challenges the provider raises (VK's captcha), at
	// the first resolution and at every re-resolution; nil fails them
	// with turnprovider.ErrChallengeRequired.
	Solver turnprovider.ChallengeSolver
	// TURNHost and TURNPort override the provider's TURN address when set.
	TURNHost string
	TURNPort int
	// Peer is tunnel-server's host:port as seen from the TURN relay. Required.
	Peer string
	// Connections is the number of workers. Default 1.
	Connections int
	// BindIP is a literal local IP for the TURN leg; empty means any.
	BindIP string
	// Mode is the TURN transport: auto (= udp), udp or tcp. Default auto.
	Mode string
	// Ingress is the overlay: udp (raw datagrams) or tcp (KCP+smux). Default udp.
	Ingress string
	// HandshakeTimeout bounds each DTLS handshake. Default 20s (udp
	// ingress) or 30s (tcp ingress).
	HandshakeTimeout time.Duration
	// Compat uses the unauthenticated prototype profile instead of PSK.
	Compat bool
	// PSKIdentity and PSK are the authenticated profile's credentials.
	// PSKIdentity defaults to "default".
	PSKIdentity string
	PSK         []byte

	// WorkerSpacing is the delay between worker starts. Default 200ms.
	WorkerSpacing time.Duration
	// MaxHandshakes caps concurrent DTLS handshakes. Default 3.
	MaxHandshakes int
	// QueueSize is each worker's outbound datagram queue. Default 64.
	QueueSize int
	// PeerIdle expires a local peer's worker binding. Default 180s.
	PeerIdle time.Duration
	// BackoffInitial and BackoffMax bound restart delays: BackoffInitial
	// doubling up to BackoffMax, each delay shortened by up to 20 % of
	// jitter so that it never exceeds BackoffMax. Defaults 200ms and 30s.
	BackoffInitial, BackoffMax time.Duration
	// RestartBudget is restarts per worker. Default 5.
	RestartBudget int
	// BudgetRefill is how long a worker must stay ready to get its budget
	// back. Default 5m.
	BudgetRefill time.Duration
	// TURNDialTimeout bounds the TCP dial of the TURN leg. Default 5s.
	TURNDialTimeout time.Duration
	// AllocationCheck is how often each worker asks the TURN server, with
	// an authenticated CreatePermission for the peer, whether it still
	// holds the worker's allocation. pion only logs a failed refresh, so
	// without this a lost allocation over UDP black-holes traffic forever.
	// A lost allocation is noticed within AllocationCheck plus two STUN
	// transaction timeouts (about 16s against a server that stays silent).
	// Default 30s.
	AllocationCheck time.Duration

	// Registry receives the warren_runtime_* series; nil registers none.
	Registry prometheus.Registerer
	// OnReady is called once when all workers are first ready.
	OnReady func()
	// OnEvent, when set, is called with each step of the session (see
	// Event), synchronously: it must not block.
	OnEvent func(Event)
}

func (c *Config) setDefaults() {
	if c.Connections <= 0 {
		c.Connections = 1
	}
	if c.Mode == "" {
		c.Mode = "auto"
	}
	if c.Ingress == "" {
		c.Ingress = "udp"
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 20 * time.Second
		if c.Ingress == "tcp" {
			c.HandshakeTimeout = 30 * time.Second
		}
	}
	if c.PSKIdentity == "" {
		c.PSKIdentity = overlay.DefaultIdentity
	}
	if c.WorkerSpacing <= 0 {
		c.WorkerSpacing = 200 * time.Millisecond
	}
	if c.MaxHandshakes <= 0 {
		c.MaxHandshakes = 3
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 64
	}
	if c.PeerIdle <= 0 {
		c.PeerIdle = 180 * time.Second
	}
	if c.BackoffInitial <= 0 {
		c.BackoffInitial = 200 * time.Millisecond
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = 30 * time.Second
	}
	if c.RestartBudget <= 0 {
		c.RestartBudget = 5
	}
	if c.BudgetRefill <= 0 {
		c.BudgetRefill = 5 * time.Minute
	}
	if c.TURNDialTimeout <= 0 {
		c.TURNDialTimeout = 5 * time.Second
	}
	if c.AllocationCheck <= 0 {
		c.AllocationCheck = DefaultAllocationCheck
	}
}

// restartBackoff is the delay sequence of one worker's restarts.
func (c *Config) restartBackoff() *backoff.Backoff {
	return backoff.Exponential(c.BackoffInitial, c.BackoffMax, RestartJitter)
}

// RestartJitter is the fraction by which a restart delay may be shortened.
const RestartJitter = 0.2

// profile is the DTLS client profile.
func (c *Config) profile() turndial.ClientProfile {
	p := turndial.ClientProfile{Compat: c.Compat, Identity: c.PSKIdentity, Key: c.PSK}
	if c.Ingress == "udp" {
		// Between warren peers one worker carries many local peers.
		p.Protocols = []string{overlay.ALPNFramedUDP}
	}
	return p
}

// turnConfig is the TURN leg to res's server.
func (c *Config) turnConfig(res *turnprovider.Resolution) turndial.Config {
	t := turndial.Config{Address: res.Address, Username: res.Username, Password: res.Password,
		Transport: c.turnMode(), DialTimeout: c.TURNDialTimeout}
	if c.BindIP != "" {
		t.BindIP = net.ParseIP(c.BindIP)
	}
	return t
}

// turnMode is the planned TURN transport (auto → udp).
func (c *Config) turnMode() string {
	if c.Mode == "tcp" {
		return "tcp"
	}
	return "udp"
}

// validate is the policy_validate stage.
func (c *Config) validate() error {
	var errs []error
	if c.Provider == "" {
		errs = append(errs, errors.New("provider: not set"))
	}
	if c.Link == "" {
		errs = append(errs, errors.New("link: not set"))
	}
	if c.Peer == "" {
		errs = append(errs, errors.New("peer: tunnel-server address is required"))
	} else if _, _, err := net.SplitHostPort(c.Peer); err != nil {
		errs = append(errs, fmt.Errorf("peer: %q is not host:port", c.Peer))
	}
	switch c.Mode {
	case "auto", "udp", "tcp":
	default:
		errs = append(errs, fmt.Errorf("mode: expected auto, udp or tcp, got %q", c.Mode))
	}
	switch c.Ingress {
	case "udp", "tcp":
	default:
		errs = append(errs, fmt.Errorf("ingress: expected udp or tcp, got %q", c.Ingress))
	}
	if c.BindIP != "" && net.ParseIP(c.BindIP) == nil {
		errs = append(errs, fmt.Errorf("bind_interface: %q is not a literal IP (interface names are not supported)", c.BindIP))
	}
	if c.TURNPort < 0 || c.TURNPort > 65535 {
		errs = append(errs, fmt.Errorf("port: %d out of range 1-65535", c.TURNPort))
	}
	if !c.Compat && len(c.PSK) == 0 {
		errs = append(errs, errors.New("psk: no PSK configured; set psk (env or YAML) or psk_file, or compat_unauthenticated for prototype peers"))
	}
	if len(errs) > 0 {
		return overlay.Wrap(overlay.StagePolicyValidate, errors.Join(errs...))
	}
	return nil
}
