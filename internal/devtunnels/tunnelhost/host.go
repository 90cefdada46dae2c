package tunnelhost

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelrelay"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/backoff"
)

// Port is one forwarded TCP port.
type Port struct {
	Number   uint16 `json:"port"`
	Protocol string `json:"protocol"` // default "auto"
}

// Status is the connection status of a Host; the strings are the TS SDK's.
type Status string

const (
	StatusNone                        Status = "none"
	StatusConnecting                  Status = "connecting"
	StatusRefreshingTunnelAccessToken Status = "refreshingTunnelAccessToken"
	StatusConnected                   Status = "connected"
	StatusDisconnected                Status = "disconnected"
)

var allStatuses = []Status{StatusNone, StatusConnecting, StatusRefreshingTunnelAccessToken, StatusConnected, StatusDisconnected}

// Mode selects the relay protocol version.
type Mode string

const (
	ModeAuto Mode = "auto" // offer V2, then V1
	ModeV2   Mode = "v2"
	ModeV1   Mode = "v1"
)

// Config configures a Host.
type Config struct {
	// RelayURL is the management API base URL of relay-server, e.g.
	// http://127.0.0.1:8080.
	RelayURL string
	TunnelID string
	// APIKey is the operator credential (sent as "Bearer"). It is used for
	// every management call and to (re)issue host tokens. Optional if
	// HostToken is given.
	APIKey string
	// HostToken is a host-scope tunnel token, used until it fails. Without
	// APIKey a 401 cannot be refreshed and is fatal.
	HostToken string
	Ports     []Port
	Mode      Mode   // default ModeAuto
	HostID    string // default: a random UUID per Host
	// LocalHost is where forwarded ports are dialed. Default "127.0.0.1"
	// with a fallback to "::1".
	LocalHost string
	// RefreshInterval re-reads the tunnel's ports from the API while
	// connected (V2 has no RefreshPorts request). Default 30s; <0 disables.
	RefreshInterval time.Duration
	HTTPClient      *http.Client          // management API; default: 30s timeout
	Registerer      prometheus.Registerer // nil: no metrics
	Backoff         *backoff.Backoff      // nil: 100ms → 12.8s, jitter [d/2, d]
	// HostKeys are the nested (V1) SSH server's host keys, published in
	// the endpoint's hostPublicKeys: ed25519 and ECDSA P-384 (the only one
	// the TypeScript SDK's clients can use), e.g. from
	// hostkeys.LoadOrCreate on tunnel-host's state dir. nil: generated for
	// this Host.
	HostKeys []ssh.Signer
	// AllowInsecureNone offers the unencrypted "none" SSH key exchange on
	// the relay socket even when it is plain ws:// to a relay that is not
	// on loopback (see tunnelrelay.NoneAllowed). Default false: there the
	// standard key exchange encrypts the relay leg.
	AllowInsecureNone bool
}

var (
	// ErrReplaced: another host connected to the same tunnel (disconnect
	// reason 11). The endpoint is left in place and the host does not
	// reconnect.
	ErrReplaced = errors.New("tunnelhost: replaced by another host (disconnect reason 11)")
	// ErrUnauthorized: the relay refused the host token, and a refreshed
	// token (or no refresh was possible without an API key).
	ErrUnauthorized = errors.New("tunnelhost: refreshed tunnel access token also does not work")
	// ErrBadConfig is wrapped by New's configuration errors.
	ErrBadConfig = errors.New("tunnelhost: bad configuration")
)

// Host is a tunnel host: it registers an endpoint, keeps a relay session up
// and serves the forwarded ports. Its methods are safe for concurrent use.
type Host struct {
	cfg       Config
	log       *slog.Logger
	api       *apiclient.Client
	wsc       *http.Client
	hostID    string
	signers   []ssh.Signer
	pubKeyB64 []string // of signers, in order
	nestedCfg *ssh.ServerConfig
	met       *metrics

	mu         sync.Mutex
	hostTok    string
	ports      map[uint16]Port
	portsGen   uint64
	status     Status
	onStatus   []func(Status)
	sessions   map[*forwarder]struct{}
	running    atomic.Bool
	setupDone  bool
	epSig      string
	epPut      bool
	relayURI   string
	relayConns atomic.Int64 // upgrade attempts (for tests and logs)
}

// New validates cfg and builds a Host. It generates the host's SSH key.
func New(cfg Config, logger *slog.Logger) (*Host, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	mode, err := tunnelrelay.CheckTarget(cfg.RelayURL, cfg.TunnelID, string(cfg.Mode))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	cfg.Mode = Mode(mode)
	if cfg.APIKey == "" && cfg.HostToken == "" {
		return nil, fmt.Errorf("%w: APIKey or HostToken is required", ErrBadConfig)
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 30 * time.Second
	}
	if cfg.Backoff == nil {
		cfg.Backoff = backoff.Reconnect()
	}
	cfg.LocalHost = strings.TrimSuffix(strings.TrimPrefix(cfg.LocalHost, "["), "]")
	h := &Host{
		cfg:      cfg,
		log:      logger.With("tunnel", cfg.TunnelID),
		hostID:   cfg.HostID,
		hostTok:  cfg.HostToken,
		ports:    make(map[uint16]Port),
		status:   StatusNone,
		sessions: make(map[*forwarder]struct{}),
	}
	if h.hostID == "" {
		h.hostID = newUUID()
	}
	httpc := cfg.HTTPClient
	if httpc == nil {
		httpc = &http.Client{Timeout: 30 * time.Second}
	}
	h.api = apiclient.New(apiclient.Config{BaseURL: cfg.RelayURL, Key: cfg.APIKey, Token: h.token, HTTPClient: httpc})
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		c.Timeout = 0 // coder/websocket rejects a client timeout
		h.wsc = &c
	}
	for _, p := range cfg.Ports {
		if p.Number == 0 {
			return nil, fmt.Errorf("%w: port 0", ErrBadConfig)
		}
		h.ports[p.Number] = normPort(p)
	}
	h.signers = cfg.HostKeys
	if len(h.signers) == 0 {
		if h.signers, err = hostkeys.Generate(); err != nil {
			return nil, err
		}
	}
	h.nestedCfg = &ssh.ServerConfig{
		NoClientAuth: true,
		Config: ssh.Config{
			KeyExchanges: []string{"ecdh-sha2-nistp384", "ecdh-sha2-nistp256", "diffie-hellman-group14-sha256"},
			Ciphers:      tunnelrelay.EndToEndCiphers(),
			// Safe with any client: each side sends at most what the other
			// announces. Sized so that each packet crosses the relay leg
			// as one packet of the channel it runs in.
			ChannelMaxPacket: tunnelrelay.EndToEndMaxPacket,
		},
	}
	for _, s := range h.signers {
		h.pubKeyB64 = append(h.pubKeyB64, base64.StdEncoding.EncodeToString(s.PublicKey().Marshal()))
		h.nestedCfg.AddHostKey(s)
	}
	if cfg.Registerer != nil {
		if h.met, err = newMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
		h.met.setStatus(StatusNone)
	}
	return h, nil
}

func normPort(p Port) Port {
	if p.Protocol == "" {
		p.Protocol = "auto"
	}
	return p
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// HostID returns the host id; the endpoint id is HostID()+"-relay".
func (h *Host) HostID() string { return h.hostID }

// HostPublicKey returns the first nested SSH host key the endpoint
// publishes (ed25519 unless Config.HostKeys says otherwise).
func (h *Host) HostPublicKey() ssh.PublicKey { return h.signers[0].PublicKey() }

// HostPublicKeys returns every nested SSH host key the endpoint publishes.
func (h *Host) HostPublicKeys() []ssh.PublicKey {
	out := make([]ssh.PublicKey, len(h.signers))
	for i, s := range h.signers {
		out[i] = s.PublicKey()
	}
	return out
}

// Status returns the current connection status.
func (h *Host) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.status
}

// OnStatus registers f to be called (synchronously, in order) on every
// status change.
func (h *Host) OnStatus(f func(Status)) {
	h.mu.Lock()
	h.onStatus = append(h.onStatus, f)
	h.mu.Unlock()
}

func (h *Host) setStatus(s Status) {
	h.mu.Lock()
	if h.status == s {
		h.mu.Unlock()
		return
	}
	h.status = s
	fs := slices.Clone(h.onStatus)
	h.mu.Unlock()
	h.log.Info("tunnel host status", "stage", string(s))
	if h.met != nil {
		h.met.setStatus(s)
	}
	for _, f := range fs {
		f(s)
	}
}

func (h *Host) token() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hostTok
}

func (h *Host) setToken(t string) {
	h.mu.Lock()
	h.hostTok = t
	h.mu.Unlock()
}

// Ports returns the forwarded ports, ordered by number.
func (h *Host) Ports() []Port {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Port, 0, len(h.ports))
	for _, p := range h.ports {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Port) int { return int(a.Number) - int(b.Number) })
	return out
}

func (h *Host) hasPort(n uint32) bool {
	if n == 0 || n > 0xffff {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.ports[uint16(n)]
	return ok
}

// RelayAttempts reports how many relay WebSocket upgrades Run has attempted.
func (h *Host) RelayAttempts() int64 { return h.relayConns.Load() }

// Run keeps the host connected until ctx ends (then it closes the session,
// deletes the endpoint and returns nil) or a fatal error: ErrReplaced,
// ErrUnauthorized, an *apiclient.StatusError for 400/403/404 and other unexpected
// statuses, or an SSH protocol error. Run may be called once.
func (h *Host) Run(ctx context.Context) error {
	if !h.running.CompareAndSwap(false, true) {
		return errors.New("tunnelhost: Run called twice")
	}
	b := h.cfg.Backoff
	refreshed := false
	for {
		h.setStatus(StatusConnecting)
		connected, err := h.runOnce(ctx)
		if connected {
			b.Reset()
			refreshed = false
		}
		if errors.Is(err, ErrReplaced) {
			// Checked before ctx: a replaced host never deletes the
			// endpoint, which now belongs to the new host's tunnel view.
			h.setStatus(StatusDisconnected)
			h.log.Warn("tunnel host replaced by another host; not reconnecting", "stage", "replaced")
			return ErrReplaced
		}
		if ctx.Err() != nil {
			h.shutdown()
			return nil
		}
		switch {
		case isStatus(err, http.StatusUnauthorized):
			if h.cfg.APIKey == "" {
				h.setStatus(StatusDisconnected)
				return fmt.Errorf("%w (no API key to refresh it: %v)", ErrUnauthorized, err)
			}
			if refreshed {
				h.setStatus(StatusDisconnected)
				return fmt.Errorf("%w: %v", ErrUnauthorized, err)
			}
			h.setStatus(StatusRefreshingTunnelAccessToken)
			if _, rerr := h.getTunnel(ctx, true); rerr != nil {
				if ctx.Err() != nil {
					h.shutdown()
					return nil
				}
				if fatal(rerr) {
					h.setStatus(StatusDisconnected)
					return rerr
				}
				h.log.Warn("refreshing host token failed", "err", rerr)
				if werr := b.Wait(ctx); werr != nil {
					h.shutdown()
					return nil
				}
				continue
			}
			refreshed = true
			continue // immediately
		case fatal(err):
			h.setStatus(StatusDisconnected)
			h.log.Error("tunnel host stopped", "stage", "fatal", "err", err)
			return err
		}
		refreshed = false
		h.setStatus(StatusDisconnected)
		d := b.Next()
		if errors.Is(err, apiclient.ErrThrottled) {
			d = max(d, apiclient.ThrottledRetryDelay)
		}
		h.log.Info("tunnel host reconnecting", "stage", "backoff", "delay", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			h.shutdown()
			return nil
		case <-t.C:
		}
	}
}

func isStatus(err error, code int) bool {
	var se *apiclient.StatusError
	return errors.As(err, &se) && se.Status == code
}

// fatal: any HTTP status other than 401 (handled apart), 429, 502 and 503;
// SSH protocol errors.
func fatal(err error) bool {
	if err == nil {
		return false
	}
	var se *apiclient.StatusError
	if errors.As(err, &se) {
		return !errors.Is(se, apiclient.ErrThrottled)
	}
	var pe *protocolError
	return errors.As(err, &pe)
}

type protocolError struct{ err error }

func (e *protocolError) Error() string { return "tunnelhost: SSH protocol error: " + e.err.Error() }
func (e *protocolError) Unwrap() error { return e.err }

func (h *Host) shutdown() {
	h.setStatus(StatusDisconnected)
	h.mu.Lock()
	put := h.epPut
	h.mu.Unlock()
	if !put {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.deleteEndpoint(ctx); err != nil {
		h.log.Warn("deleting endpoint failed", "err", err)
	}
}

// setup runs the management part of the lifecycle: read the tunnel, create
// the configured ports (once), register the endpoint. It returns the host
// relay URI.
func (h *Host) setup(ctx context.Context) (string, error) {
	h.mu.Lock()
	first := !h.setupDone
	h.mu.Unlock()
	t, err := h.getTunnel(ctx, h.cfg.APIKey != "" && h.token() == "")
	if err != nil {
		return "", err
	}
	if first {
		for _, p := range h.Ports() {
			if err := h.putPort(ctx, p); err != nil {
				return "", err
			}
		}
		h.mu.Lock()
		h.setupDone = true
		h.mu.Unlock()
	}
	h.mergeAPIPorts(t.Ports, !first)
	hasSSH := false
	for _, p := range t.Ports {
		if p.Protocol == "ssh" {
			hasSSH = true
		}
	}
	sig := fmt.Sprintf("%s.%s:%s.%s:%t:%s:%s", t.TunnelID, t.ClusterID, t.Name, t.Domain, hasSSH, h.hostID, strings.Join(h.pubKeyB64, ","))
	// The endpoint is registered before every relay session, not only when
	// its signature changed: a relay that restarted, or a relay node that
	// died, released the endpoints it held, and a clustered relay records
	// the node of the new session on it.
	ep, err := h.putEndpoint(ctx)
	if err != nil {
		return "", err
	}
	if ep.HostRelayURI == "" {
		return "", &protocolError{errors.New("endpoint response has no hostRelayUri")}
	}
	h.mu.Lock()
	h.epPut, h.epSig, h.relayURI = true, sig, ep.HostRelayURI
	h.mu.Unlock()
	h.log.Info("endpoint registered", "stage", "endpoint", "endpoint_id", h.endpointID())
	return ep.HostRelayURI, nil
}

// mergeAPIPorts adds the tunnel's ports from the API to the forwarded set;
// with replace, the set becomes exactly the API's.
func (h *Host) mergeAPIPorts(api []tunnelproto.TunnelPort, replace bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if replace {
		h.ports = make(map[uint16]Port, len(api))
	}
	for _, p := range api {
		if p.PortNumber != 0 {
			h.ports[p.PortNumber] = normPort(Port{Number: p.PortNumber, Protocol: p.Protocol})
		}
	}
}

// relaySSHConfig is the SSH client configuration of the relay socket at
// uri: the none key exchange is offered where tunnelrelay.NoneAllowed says.
func (h *Host) relaySSHConfig(uri string) *ssh.ClientConfig {
	none, _ := tunnelrelay.NoneAllowed(uri, h.cfg.AllowInsecureNone) // Dial has checked the URL
	if !none {
		h.log.Debug("not offering the none key exchange: plain ws:// to a relay beyond loopback", "stage", "ssh")
	}
	return &ssh.ClientConfig{
		Config:          tunnelrelay.LegConfig(none),
		User:            "tunnel",
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
		Timeout:         tunnelrelay.SSHHandshakeTimeout,
	}
}

// runOnce runs one relay session. connected reports whether it reached the
// connected state.
func (h *Host) runOnce(ctx context.Context) (connected bool, err error) {
	uri, err := h.setup(ctx)
	if err != nil {
		return false, err
	}
	h.relayConns.Add(1)
	conn, err := tunnelrelay.Dial(ctx, tunnelrelay.DialConfig{
		URL: uri, Side: tunnelrelay.HostSide, Mode: string(h.cfg.Mode), Token: h.token(),
		HTTPClient: h.wsc, HandshakeTimeout: tunnelrelay.UpgradeTimeout,
	})
	var refused *tunnelrelay.RefusedError
	var badProto *tunnelrelay.SubprotocolError
	switch {
	case errors.As(err, &refused):
		return false, apiErr(&apiclient.StatusError{Op: "relay upgrade", Status: refused.Status})
	case errors.As(err, &badProto):
		return false, &protocolError{badProto}
	case err != nil:
		return false, fmt.Errorf("tunnelhost: relay upgrade: %w", err)
	}
	v2 := conn.Subprotocol() == tunnelproto.SubprotocolHostV2
	sc, chans, reqs, err := tunnelrelay.SSHHandshake(conn, "relay", h.relaySSHConfig(uri))
	if errors.Is(err, tunnelrelay.ErrNoneRefused) {
		return false, &protocolError{err} // retrying cannot help
	}
	if err != nil {
		return false, fmt.Errorf("tunnelhost: relay SSH handshake: %w", err)
	}
	go ssh.DiscardRequests(reqs)
	sctx, scancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		scancel()
		_ = sc.Close()
		wg.Wait()
	}()
	wg.Go(func() {
		for nc := range chans {
			h.handleChannel(sctx, nc, &wg)
		}
	})
	if v2 {
		f := &forwarder{h: h, conn: sc, v2: true, announced: map[uint16]bool{}}
		if err := f.sync(); err != nil {
			return false, err
		}
		h.addSession(f)
		defer h.removeSession(f)
	}
	h.log.Info("relay session up", "stage", "relay", "protocol", conn.Subprotocol())
	h.setStatus(StatusConnected)
	if h.cfg.RefreshInterval > 0 {
		wg.Go(func() {
			t := time.NewTicker(h.cfg.RefreshInterval)
			defer t.Stop()
			for {
				select {
				case <-sctx.Done():
					return
				case <-t.C:
					if err := h.refreshPorts(sctx); err != nil && sctx.Err() == nil {
						h.log.Warn("periodic port refresh failed", "err", err)
					}
				}
			}
		})
	}
	done := make(chan error, 1)
	go func() { done <- sc.Wait() }()
	select {
	case <-ctx.Done():
		sc.Close()
		<-done
		return true, ctx.Err()
	case err := <-done:
		if replaced(err) {
			return true, fmt.Errorf("%w: %v", ErrReplaced, err)
		}
		if err == nil {
			err = errors.New("relay session closed")
		}
		return true, fmt.Errorf("tunnelhost: relay session lost: %w", err)
	}
}

// replaced: the relay closed the host's WebSocket with the replacement
// close code (see tunnelrelay's package documentation). x/crypto keeps the
// websocket error in the chain that ssh.Conn.Wait returns; a real
// SSH_MSG_DISCONNECT is not checked for because x/crypto's disconnect error
// is unexported and warren's relay never sends one.
func replaced(err error) bool {
	return websocket.CloseStatus(err) == tunnelrelay.CloseStatusReplaced
}

// refreshPorts re-reads the tunnel's ports from the API and updates the
// forwards of every session. A concurrent AddPort/RemovePort wins.
func (h *Host) refreshPorts(ctx context.Context) error {
	h.mu.Lock()
	gen := h.portsGen
	h.mu.Unlock()
	t, err := h.getTunnel(ctx, false)
	if err != nil {
		return err
	}
	h.mu.Lock()
	if h.portsGen != gen {
		h.mu.Unlock()
		return nil
	}
	h.mu.Unlock()
	h.mergeAPIPorts(t.Ports, true)
	h.syncAll(ctx)
	return nil
}

// AddPort creates the port through the API (409 tolerated) and forwards it
// on every live session.
func (h *Host) AddPort(ctx context.Context, p Port) error {
	if p.Number == 0 {
		return fmt.Errorf("%w: port 0", ErrBadConfig)
	}
	p = normPort(p)
	if err := h.putPort(ctx, p); err != nil {
		return err
	}
	h.mu.Lock()
	h.ports[p.Number] = p
	h.portsGen++
	h.mu.Unlock()
	h.syncAll(ctx)
	return nil
}

// RemovePort deletes the port through the API and cancels its forwards.
func (h *Host) RemovePort(ctx context.Context, n uint16) error {
	if err := h.deletePort(ctx, n); err != nil {
		return err
	}
	h.mu.Lock()
	delete(h.ports, n)
	h.portsGen++
	h.mu.Unlock()
	h.syncAll(ctx)
	return nil
}

// SetPorts reconciles the forwarded ports to exactly ports.
func (h *Host) SetPorts(ctx context.Context, ports []Port) error {
	want := map[uint16]Port{}
	for _, p := range ports {
		want[p.Number] = normPort(p)
	}
	var errs []error
	for _, p := range h.Ports() {
		if _, ok := want[p.Number]; !ok {
			errs = append(errs, h.RemovePort(ctx, p.Number))
		}
	}
	cur := map[uint16]bool{}
	for _, p := range h.Ports() {
		cur[p.Number] = true
	}
	for _, p := range want {
		if !cur[p.Number] {
			errs = append(errs, h.AddPort(ctx, p))
		}
	}
	return errors.Join(errs...)
}

// syncAll brings every session's announced forwards in line with the
// current ports, waiting for them (or ctx).
func (h *Host) syncAll(ctx context.Context) {
	h.mu.Lock()
	fs := make([]*forwarder, 0, len(h.sessions))
	for f := range h.sessions {
		fs = append(fs, f)
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, f := range fs {
			wg.Go(func() {
				if err := f.sync(); err != nil {
					h.log.Debug("forward sync failed", "err", err)
				}
			})
		}
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (h *Host) addSession(f *forwarder) {
	h.mu.Lock()
	h.sessions[f] = struct{}{}
	h.mu.Unlock()
	_ = f.sync() // ports may have changed in between
}

func (h *Host) removeSession(f *forwarder) {
	h.mu.Lock()
	delete(h.sessions, f)
	h.mu.Unlock()
}

// forwarder announces ports on one SSH connection: the V2 relay session
// (PortRelayRequest with the host token) or a nested V1 client session
// (standard tcpip-forward).
type forwarder struct {
	h    *Host
	conn ssh.Conn
	v2   bool

	mu        sync.Mutex
	announced map[uint16]bool
}

func (f *forwarder) payload(p uint16) []byte {
	if f.v2 {
		return tunnelproto.PortRelayRequest{AddressToBind: "127.0.0.1", Port: uint32(p), AccessToken: f.h.token()}.Marshal()
	}
	return tunnelproto.PortForwardRequest{AddressToBind: "127.0.0.1", Port: uint32(p)}.Marshal()
}

func (f *forwarder) sync() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	want := map[uint16]bool{}
	for _, p := range f.h.Ports() {
		want[p.Number] = true
	}
	var errs []error
	for p := range f.announced {
		if !want[p] {
			delete(f.announced, p)
			if _, _, err := f.conn.SendRequest(tunnelproto.RequestCancelTCPIPForward, true, f.payload(p)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for p := range want {
		if f.announced[p] {
			continue
		}
		ok, _, err := f.conn.SendRequest(tunnelproto.RequestTCPIPForward, true, f.payload(p))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			f.h.log.Warn("port forward refused by peer", "port", p, "v2", f.v2)
			continue
		}
		f.announced[p] = true
	}
	return errors.Join(errs...)
}

// dialLocal dials the local service of port p.
func (h *Host) dialLocal(ctx context.Context, p uint32) (net.Conn, error) {
	hosts := []string{"127.0.0.1", "::1"}
	if h.cfg.LocalHost != "" {
		hosts = []string{h.cfg.LocalHost}
	}
	var d net.Dialer
	var first error
	for _, host := range hosts {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(host, fmt.Sprint(p)))
		cancel()
		if err == nil {
			return c, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}
