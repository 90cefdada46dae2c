package turnlab

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/pion/logging"
	"github.com/pion/turn/v4"
)

// Lab defaults.
const (
	Realm    = "turn.lab"
	User     = "turn-lab-user"
	Password = "turn-lab-pass"
)

// Config configures a Lab. The zero value is a static-user lab.
type Config struct {
	// RESTSecret, when set, also accepts TURN REST usernames
	// ("<expiry>:<user>") whose password is HMAC-SHA1(RESTSecret, username).
	RESTSecret string
	// DisableStaticUser turns the static user off (REST-only lab).
	DisableStaticUser bool
}

// Lab is a running loopback TURN server with echo upstreams.
type Lab struct {
	// TURNUDP and TURNTCP are the TURN server's host:port on 127.0.0.1.
	TURNUDP, TURNTCP string
	// EchoUDP and EchoTCP are the echo upstreams' host:port.
	EchoUDP, EchoTCP string

	cfg    Config
	srvMu  sync.Mutex // guards server across Restart
	server *turn.Server
	// udpAddr and tcpAddr are TURNUDP and TURNTCP, owned by startServer
	// (the exported copies are never written after Start).
	udpAddr, tcpAddr string
	auths            atomic.Int64

	mu        sync.Mutex
	tcpConns  map[net.Conn]struct{}
	relays    map[net.PacketConn]struct{}
	closers   []io.Closer
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Start runs a lab on loopback until Close. ctx bounds only the start.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	l := &Lab{cfg: cfg, tcpConns: map[net.Conn]struct{}{}, relays: map[net.PacketConn]struct{}{}}
	if err := l.startServer(ctx, "127.0.0.1:0", "127.0.0.1:0"); err != nil {
		return nil, err
	}
	l.TURNUDP, l.TURNTCP = l.udpAddr, l.tcpAddr
	if err := l.startEchoes(ctx); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Restart stops the TURN server and starts a fresh one on the same UDP and
// TCP ports, as a real server restart would: every allocation is gone,
// TURN-over-TCP clients see their connection drop, TURN-over-UDP clients
// see nothing at all. ctx bounds only the start.
func (l *Lab) Restart(ctx context.Context) error {
	l.srvMu.Lock()
	defer l.srvMu.Unlock()
	l.server.Close()
	l.KillTCP()
	l.mu.Lock()
	clear(l.relays)
	l.mu.Unlock()
	return l.startServer(ctx, l.udpAddr, l.tcpAddr)
}

func (l *Lab) startServer(ctx context.Context, udpAddr, tcpAddr string) error {
	cfg := l.cfg
	var lc net.ListenConfig
	udp, err := lc.ListenPacket(ctx, "udp4", udpAddr)
	if err != nil {
		return err
	}
	tcp, err := lc.Listen(ctx, "tcp4", tcpAddr)
	if err != nil {
		udp.Close()
		return err
	}
	l.udpAddr, l.tcpAddr = udp.LocalAddr().String(), tcp.Addr().String()
	gen := func() turn.RelayAddressGenerator {
		return &trackingGenerator{RelayAddressGeneratorStatic: &turn.RelayAddressGeneratorStatic{
			RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"}, lab: l}
	}
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	var restAuth turn.AuthHandler
	if cfg.RESTSecret != "" {
		restAuth = turn.LongTermTURNRESTAuthHandler(cfg.RESTSecret, lf.NewLogger("lab-rest"))
	}
	staticKey := turn.GenerateAuthKey(User, Realm, Password)
	l.server, err = turn.NewServer(turn.ServerConfig{
		Realm:         Realm,
		LoggerFactory: lf,
		AuthHandler: func(username, realm string, src net.Addr) ([]byte, bool) {
			var key []byte
			ok := false
			switch {
			case !cfg.DisableStaticUser && username == User:
				key, ok = staticKey, true
			case restAuth != nil && strings.Contains(username, ":"):
				key, ok = restAuth(username, realm, src)
			}
			if ok {
				l.auths.Add(1)
			}
			return key, ok
		},
		PacketConnConfigs: []turn.PacketConnConfig{{PacketConn: udp, RelayAddressGenerator: gen()}},
		ListenerConfigs:   []turn.ListenerConfig{{Listener: &trackingListener{Listener: tcp, lab: l}, RelayAddressGenerator: gen()}},
	})
	if err != nil {
		udp.Close()
		tcp.Close()
		return err
	}
	return nil
}

// Auths counts successful authentications (Allocate, Refresh,
// CreatePermission, ChannelBind all authenticate).
func (l *Lab) Auths() int64 { return l.auths.Load() }

// Allocations is the number of live allocations.
func (l *Lab) Allocations() int {
	l.srvMu.Lock()
	defer l.srvMu.Unlock()
	return l.server.AllocationCount()
}

// KillTCP closes every TURN-over-TCP client connection, which ends their
// allocations as seen by the clients.
func (l *Lab) KillTCP() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.tcpConns)
	for c := range l.tcpConns {
		c.Close()
		delete(l.tcpConns, c)
	}
	return n
}

// KillOneTCP closes one TURN-over-TCP client connection (any one) and
// reports whether there was one.
func (l *Lab) KillOneTCP() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c := range l.tcpConns {
		c.Close()
		delete(l.tcpConns, c)
		return true
	}
	return false
}

// KillRelays closes every relay socket: traffic through existing
// allocations stops.
func (l *Lab) KillRelays() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.relays)
	for c := range l.relays {
		c.Close()
		delete(l.relays, c)
	}
	return n
}

// Close stops the TURN server and the echoes.
func (l *Lab) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.srvMu.Lock()
		err = l.server.Close()
		l.srvMu.Unlock()
		l.KillTCP()
		l.mu.Lock()
		for _, c := range l.closers {
			c.Close()
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

func (l *Lab) startEchoes(ctx context.Context) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ln, err := lc.Listen(ctx, "tcp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		return err
	}
	l.EchoUDP, l.EchoTCP = pc.LocalAddr().String(), ln.Addr().String()
	l.mu.Lock()
	l.closers = append(l.closers, pc, ln)
	l.mu.Unlock()
	l.wg.Add(2)
	go func() {
		defer l.wg.Done()
		EchoUDP(pc)
	}()
	go func() {
		defer l.wg.Done()
		var conns sync.WaitGroup
		defer conns.Wait()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.closers = append(l.closers, c)
			l.mu.Unlock()
			conns.Add(1)
			go func() {
				defer conns.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return nil
}

// EchoUDP sends every datagram back to its sender until pc is closed.
func EchoUDP(pc net.PacketConn) {
	buf := make([]byte, 65536)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		pc.WriteTo(buf[:n], from)
	}
}

type trackingGenerator struct {
	*turn.RelayAddressGeneratorStatic
	lab *Lab
}

func (g *trackingGenerator) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.RelayAddressGeneratorStatic.AllocatePacketConn(network, port)
	if err == nil {
		g.lab.mu.Lock()
		g.lab.relays[pc] = struct{}{}
		g.lab.mu.Unlock()
	}
	return pc, addr, err
}

type trackingListener struct {
	net.Listener
	lab *Lab
}

func (t *trackingListener) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err == nil {
		t.lab.mu.Lock()
		t.lab.tcpConns[c] = struct{}{}
		t.lab.mu.Unlock()
	}
	return c, err
}
