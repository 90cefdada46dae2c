package turndial

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// DefaultDialTimeout is Config.DialTimeout's default.
const DefaultDialTimeout = 5 * time.Second

// Config says which TURN server to reach and how.
type Config struct {
	// Address is the TURN server's host:port. Required.
	Address string
	// Username and Password are the TURN long-term credentials.
	Username, Password string
	// Transport is "udp" (default) or "tcp" (STUN framed over one TCP
	// connection, RFC 5766 §2.1).
	Transport string
	// BindIP is the local IP of the TURN leg; nil means any. Its address
	// family must be the server's.
	BindIP net.IP
	// DialTimeout bounds the TCP dial. Default DefaultDialTimeout (5s).
	DialTimeout time.Duration

	// PacketConn is an already-opened UDP socket for the TURN leg; Dial
	// returns it instead of opening one. Default nil.
	PacketConn net.PacketConn
	// Conn is an already-opened TCP connection to the TURN server; Dial
	// frames it as STUN instead of dialing. Default nil.
	Conn net.Conn
}

func (c *Config) tcp() bool { return c.Transport == "tcp" }

// Dial opens the TURN leg: an unconnected UDP socket of the server's
// address family, or a TCP connection framed as STUN. The stage is
// turn_dial.
func Dial(ctx context.Context, cfg Config) (net.PacketConn, error) {
	switch {
	case cfg.PacketConn != nil:
		return cfg.PacketConn, nil
	case cfg.Conn != nil:
		return turn.NewSTUNConn(cfg.Conn), nil
	}
	host, _, err := net.SplitHostPort(cfg.Address)
	if err != nil {
		return nil, fmt.Errorf("TURN address %q: %w", cfg.Address, err)
	}
	v6 := false
	if ip := net.ParseIP(host); ip != nil {
		v6 = ip.To4() == nil
	} else {
		ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("resolve TURN host %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolve TURN host %s: no addresses", host)
		}
		v6 = ips[0].IP.To4() == nil
	}
	if cfg.BindIP != nil && (cfg.BindIP.To4() == nil) != v6 {
		return nil, fmt.Errorf("bind_interface %s and TURN server %s are different address families", cfg.BindIP, cfg.Address)
	}
	fam := "4"
	if v6 {
		fam = "6"
	}
	if cfg.tcp() {
		d := net.Dialer{Timeout: cfg.DialTimeout}
		if d.Timeout <= 0 {
			d.Timeout = DefaultDialTimeout
		}
		if cfg.BindIP != nil {
			d.LocalAddr = &net.TCPAddr{IP: cfg.BindIP}
		}
		conn, err := d.DialContext(ctx, "tcp"+fam, cfg.Address)
		if err != nil {
			return nil, fmt.Errorf("dial TURN server %s over tcp: %w", cfg.Address, err)
		}
		return turn.NewSTUNConn(conn), nil
	}
	local := ":0"
	if cfg.BindIP != nil {
		local = net.JoinHostPort(cfg.BindIP.String(), "0")
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp"+fam, local)
	if err != nil {
		return nil, fmt.Errorf("open udp socket for TURN: %w", err)
	}
	return pc, nil
}

// quietPion keeps pion's own loggers silent; errors come back as values.
var quietPion = func() logging.LoggerFactory {
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	return lf
}()

// Allocation is one TURN allocation. Close releases it.
type Allocation struct {
	// Client is the pion TURN client; it refreshes the allocation and
	// permissions on its own timers.
	Client *turn.Client
	// Relay is the relayed transport address as a PacketConn.
	Relay net.PacketConn

	conn    net.PacketConn
	address string
}

// Allocate allocates a relay on cfg.Address over conn (from Dial). It owns
// conn from then on: on failure conn is closed, on success Close closes
// it. The stage is turn_allocate. An error response from the server is a
// *ResponseError in the chain; a refusal of the credentials says so.
func Allocate(ctx context.Context, conn net.PacketConn, cfg Config) (*Allocation, error) {
	tc, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: cfg.Address, TURNServerAddr: cfg.Address,
		Conn: conn, Username: cfg.Username, Password: cfg.Password,
		LoggerFactory: quietPion,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("turn client: %w", err)
	}
	a := &Allocation{Client: tc, conn: conn, address: cfg.Address}
	if err := tc.Listen(); err != nil {
		a.Close()
		return nil, fmt.Errorf("turn listen: %w", err)
	}
	// Allocate takes no context: closing the client unblocks it.
	stop := context.AfterFunc(ctx, func() { tc.Close(); conn.Close() })
	relay, err := tc.Allocate()
	stopped := stop()
	if err != nil {
		a.Close()
		if !stopped && ctx.Err() != nil {
			transport := cfg.Transport
			if transport == "" {
				transport = "udp"
			}
			return nil, fmt.Errorf("allocate on %s: no answer from %s over %s: %w", cfg.Address, cfg.Address, transport, ctx.Err())
		}
		return nil, allocateError(cfg.Address, classify(err))
	}
	a.Relay = relay
	return a, nil
}

// allocateError says what a refusal means. coturn answers wrong
// credentials with 401; pion/turn servers with 400 once the nonce round is
// done.
func allocateError(addr string, err error) error {
	why := ""
	switch {
	case errors.Is(err, ErrUnauthorized):
		why = "401 Unauthorized"
	case errors.Is(err, ErrBadRequest):
		why = "400 Bad Request, which pion/turn servers send for an unknown user or a wrong password"
	default:
		return fmt.Errorf("allocate on %s: %w", addr, err)
	}
	return fmt.Errorf("allocate on %s: the TURN server refused the credentials (%s; check the username and password, or the turn-rest secret and the server's clock): %w", addr, why, err)
}

// RelayAddr is the relayed address as a string.
func (a *Allocation) RelayAddr() string { return a.Relay.LocalAddr().String() }

// CreatePermission asks the server for (or refreshes) a permission for
// peer. The request is authenticated and bound to the allocation, so an
// error response (*ResponseError; 437 from coturn) means the server no
// longer holds it; other errors are timeouts.
func (a *Allocation) CreatePermission(peer net.Addr) error {
	return classify(a.Client.CreatePermission(peer))
}

// Close releases the allocation and closes the TURN leg.
func (a *Allocation) Close() error {
	if a.Relay != nil {
		a.Relay.Close()
	}
	a.Client.Close()
	return a.conn.Close()
}
