package tunnelclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/metrics"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnclient"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// TurnConfig is the `turn:` section: the TURN overlay client.
type TurnConfig struct {
	Provider         string        `yaml:"provider" flag:"provider" usage:"credential provider: generic-turn, turn-rest or vk"`
	Link             string        `yaml:"link" flag:"link" usage:"provider link, e.g. generic-turn://USER:PASS@HOST:PORT, turn-rest://USER@HOST:PORT?ttl=1h or https://vk.com/call/join/TOKEN (a generic-turn password on the command line is visible in ps: prefer env or YAML)"`
	Listen           string        `yaml:"listen" flag:"listen" usage:"local address to accept UDP datagrams (ingress udp) or TCP connections (ingress tcp) on"`
	Peer             string        `yaml:"peer" flag:"peer" usage:"tunnel-server host:port as reachable from the TURN relay (required)"`
	Connections      int           `yaml:"connections" flag:"connections" usage:"number of workers (TURN allocations with one DTLS session each)"`
	Server           string        `yaml:"server" flag:"turn" usage:"override the TURN server host the provider returned"`
	Port             int           `yaml:"port" flag:"port" usage:"override the TURN server port the provider returned (0 keeps it)"`
	BindInterface    string        `yaml:"bind_interface" flag:"bind-interface" usage:"local IP (literal, not an interface name) for the TURN leg"`
	Mode             string        `yaml:"mode" flag:"mode" usage:"TURN transport: auto (= udp), udp or tcp"`
	Ingress          string        `yaml:"ingress" flag:"ingress" usage:"overlay: udp (raw datagrams) or tcp (KCP+smux); must match tunnel-server's egress"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" flag:"handshake-timeout" usage:"DTLS handshake timeout; 0 means 20s for udp ingress, 30s for tcp"`
	AllocationCheck  time.Duration `yaml:"allocation_check" flag:"allocation-check" usage:"how often each worker checks (a CreatePermission refresh) that the TURN server still holds its allocation; a lost one restarts the worker"`
	Compat           bool          `yaml:"compat_unauthenticated" flag:"compat-unauthenticated" usage:"use the unauthenticated vk-turn-proxy prototype profile instead of a PSK"`
	PSK              string        `yaml:"psk" flag:"psk" secret:"true" usage:"pre-shared key: a base64 key, or one line <identity> <base64 key>"`
	PSKIdentity      string        `yaml:"psk_identity" flag:"psk-identity" usage:"PSK identity sent to tunnel-server"`
	RESTSecret       string        `yaml:"rest_secret" flag:"turn-rest-secret" secret:"true" usage:"turn-rest shared secret (coturn static-auth-secret)"`
	MetricsListen    string        `yaml:"metrics_listen" flag:"metrics-listen" usage:"address to serve /metrics on; empty means off"`
	Interactive      bool          `yaml:"interactive" flag:"interactive" usage:"when the provider asks for a person (VK captcha), print the challenge URL on stderr and read the answer from stdin (also at re-resolution)"`
}

func defaultTurnConfig() TurnConfig {
	return TurnConfig{Listen: "127.0.0.1:9000", Connections: 1, Mode: "auto", Ingress: "udp", PSKIdentity: overlay.DefaultIdentity,
		AllocationCheck: turnclient.DefaultAllocationCheck}
}

// validate checks the formats; required keys are checked when turn runs,
// so that `connect` and `config show` work without them.
func (t *TurnConfig) validate() error {
	switch t.Mode {
	case "auto", "udp", "tcp":
	default:
		return cli.FieldErrorf("turn.mode", "expected auto, udp or tcp, got %q", t.Mode)
	}
	switch t.Ingress {
	case "udp", "tcp":
	default:
		return cli.FieldErrorf("turn.ingress", "expected udp or tcp, got %q", t.Ingress)
	}
	if t.Connections < 1 || t.Connections > 64 {
		return cli.FieldErrorf("turn.connections", "must be 1-64, got %d", t.Connections)
	}
	if t.AllocationCheck < time.Second {
		return cli.FieldErrorf("turn.allocation_check", "must be at least 1s, got %v", t.AllocationCheck)
	}
	if t.Port < 0 || t.Port > 65535 {
		return cli.FieldErrorf("turn.port", "must be 0-65535, got %d", t.Port)
	}
	if t.BindInterface != "" && net.ParseIP(t.BindInterface) == nil {
		return cli.FieldErrorf("turn.bind_interface", "%q is not a literal IP address (interface names are not supported)", t.BindInterface)
	}
	if t.Provider != "" {
		if _, err := turnprovider.Lookup(t.Provider); err != nil {
			return cli.FieldErrorf("turn.provider", "%w", err)
		}
	}
	if t.PSK != "" {
		if _, _, err := overlay.ParseClientKey(t.PSK); err != nil {
			return cli.FieldErrorf("turn.psk", "%w", err)
		}
	}
	return nil
}

func turnCmd(app *cli.App, cfg *Config) *cobra.Command {
	app.Preflight("turn", func() error { _, _, err := checkTurn(&cfg.Turn); return err })
	cmd := &cobra.Command{
		Use:   "turn",
		Short: "Carry local UDP or TCP through a TURN server to a tunnel-server (DTLS overlay)",
		Long: `turn resolves TURN credentials with --provider/--link, runs --connections
workers (each a TURN allocation with a DTLS session to --peer, a tunnel-server)
and forwards what arrives on --listen over them. It prints "ready ..." on
stdout once every worker is up.

Secrets (psk, rest_secret) are read from env, YAML or their _file keys, never
from the command line. A vk provider failure names its stage and code:
  client runtime failed stage=provider_resolve: vk stage <stage> [<code>]: ...
When VK asks for a captcha, --interactive prints the challenge URL on stderr
and reads the answer from stdin. Exit codes: 0 stopped, 1 runtime failure
(including a provider stage failure), 2 config error, 3 provider not
available (a captcha with nobody to answer it: use --interactive).`,
		Args: cobra.NoArgs,
	}
	list := cmd.Flags().Bool("list-providers", false, "print the provider names and exit")
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *list {
			return printProviders(app, out)
		}
		return runTurn(cmd.Context(), app, &cfg.Turn, out)
	}
	providers := &cobra.Command{
		Use:   "providers",
		Short: "List the credential providers",
		Args:  cobra.NoArgs,
	}
	pout := cli.AddOutputFlag(providers)
	providers.RunE = func(*cobra.Command, []string) error { return printProviders(app, pout) }
	cmd.AddCommand(providers)
	return cmd
}

func printProviders(app *cli.App, out *cli.Output) error {
	if out.JSON() {
		return cli.WriteJSON(app.Stdout, turnprovider.Names())
	}
	for _, n := range turnprovider.Names() {
		fmt.Fprintln(app.Stdout, n)
	}
	return nil
}

// checkTurn is what turn checks before it starts, and what 'config
// validate turn' runs beyond the formats. It returns the PSK identity and key.
func checkTurn(t *TurnConfig) (string, []byte, error) {
	required := []struct{ key, val, env string }{
		{"turn.provider", t.Provider, "PROVIDER"}, {"turn.link", t.Link, "LINK"}, {"turn.peer", t.Peer, "PEER"},
	}
	for _, r := range required {
		if r.val == "" {
			return "", nil, &cli.ConfigError{Key: r.key, Err: fmt.Errorf("not set: give --%s or WARREN_TUNNEL_CLIENT_TURN_%s", strings.TrimPrefix(r.key, "turn."), r.env)}
		}
	}
	var identity = t.PSKIdentity
	var key []byte
	if t.PSK != "" {
		id, k, err := overlay.ParseClientKey(t.PSK)
		if err != nil {
			return "", nil, &cli.ConfigError{Key: "turn.psk", Err: err}
		}
		key = k
		if id != "" {
			identity = id
		}
	}
	if key == nil && !t.Compat {
		return "", nil, &cli.ConfigError{Key: "turn.psk", Err: errors.New("no pre-shared key: set WARREN_TUNNEL_CLIENT_TURN_PSK, turn.psk in YAML or --psk-file, or --compat-unauthenticated for prototype servers")}
	}
	if strings.EqualFold(t.Provider, "turn-rest") && t.RESTSecret == "" {
		return "", nil, &cli.ConfigError{Key: "turn.rest_secret", Err: errors.New("turn-rest needs the shared secret: set WARREN_TUNNEL_CLIENT_TURN_REST_SECRET, turn.rest_secret in YAML or --turn-rest-secret-file")}
	}
	return identity, key, nil
}

func runTurn(ctx context.Context, app *cli.App, t *TurnConfig, out *cli.Output) error {
	identity, key, err := checkTurn(t)
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry("tunnel-client")
	ready := make(chan struct{}, 1)
	var solver turnprovider.ChallengeSolver
	if t.Interactive {
		solver = &turnprovider.PromptSolver{In: app.Stdin, Out: app.Stderr}
	}
	client, err := turnclient.New(turnclient.Config{
		Provider: strings.ToLower(t.Provider), Link: t.Link, RESTSecret: t.RESTSecret, Solver: solver,
		TURNHost: t.Server, TURNPort: t.Port, Peer: t.Peer, Connections: t.Connections,
		BindIP: t.BindInterface, Mode: t.Mode, Ingress: t.Ingress, HandshakeTimeout: t.HandshakeTimeout,
		AllocationCheck: t.AllocationCheck, Compat: t.Compat, PSKIdentity: identity, PSK: key, Registry: reg,
		OnReady: func() { ready <- struct{}{} },
	}, app.Logger)
	if err != nil {
		return turnFailure(err)
	}
	if t.MetricsListen != "" {
		stop, err := cli.ServeMetrics(t.MetricsListen, reg)
		if err != nil {
			return turnFailure(overlay.Errorf(overlay.StageMetricsListen, "metrics listener %s (turn.metrics_listen): %w", t.MetricsListen, err))
		}
		defer stop()
	}
	var localAddr string
	var serve func(ctx context.Context) error
	if t.Ingress == "tcp" {
		bound := make(chan string, 1)
		serve = func(ctx context.Context) error {
			return client.RunTCP(ctx, func(ctx context.Context) (net.Listener, error) {
				var lc net.ListenConfig
				ln, err := lc.Listen(ctx, "tcp", t.Listen)
				if err != nil {
					return nil, fmt.Errorf("listen tcp %s (turn.listen): %w", t.Listen, err)
				}
				bound <- ln.Addr().String()
				return ln, nil
			})
		}
		go func() {
			select {
			case <-ctx.Done():
			case <-ready:
				select {
				case a := <-bound:
					printReady(app, out, a, t)
				case <-ctx.Done():
				}
			}
		}()
	} else {
		pc, err := net.ListenPacket("udp", t.Listen)
		if err != nil {
			return turnFailure(overlay.Errorf(overlay.StageLocalBind, "listen udp %s (turn.listen): %w", t.Listen, err))
		}
		defer pc.Close()
		if uc, ok := pc.(*net.UDPConn); ok {
			// Room for bursts (WireGuard handshakes, bulk transfers) while
			// the workers catch up; the kernel caps it at rmem_max.
			uc.SetReadBuffer(4 << 20)
		}
		localAddr = pc.LocalAddr().String()
		serve = func(ctx context.Context) error { return client.RunUDP(ctx, pc) }
		go func() {
			select {
			case <-ctx.Done():
			case <-ready:
				printReady(app, out, localAddr, t)
			}
		}()
	}
	return turnFailure(app.RunDaemon(ctx, serve))
}

func printReady(app *cli.App, out *cli.Output, addr string, t *TurnConfig) {
	if out.JSON() {
		cli.WriteJSONLine(app.Stdout, map[string]any{"event": "ready", "listen": addr, "ingress": t.Ingress, "peer": t.Peer, "workers": t.Connections})
		return
	}
	fmt.Fprintf(app.Stdout, "ready listen=%s ingress=%s peer=%s workers=%d\n", addr, t.Ingress, t.Peer, t.Connections)
}

// turnFailure maps engine errors to exit codes: 3 for an unavailable
// provider (or one that needs a person nobody is there to be), 2 for policy errors, 1 with "client runtime failed stage=<s>: <msg>"
// for the rest.
func turnFailure(err error) error {
	if err == nil {
		return nil
	}
	var se *overlay.StageError
	if !errors.As(err, &se) {
		return err
	}
	msg := fmt.Errorf("client runtime failed stage=%s: %s", se.Stage, se.Msg())
	switch {
	case errors.Is(err, turnprovider.ErrNotImplemented), errors.Is(err, turnprovider.ErrChallengeRequired),
		errors.Is(err, turnprovider.ErrChallengeCanceled):
		return &cli.ExitError{Code: 3, Err: msg}
	case se.Stage == overlay.StagePolicyValidate:
		return &cli.ConfigError{Err: msg}
	}
	return msg
}
