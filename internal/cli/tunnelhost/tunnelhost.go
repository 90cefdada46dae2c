// Package tunnelhost is the command line of tunnel-host, which exposes
// local TCP ports through a warren relay tunnel. The root command runs the
// host; `status` and `ports` talk to a running host over its control socket.
package tunnelhost

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelhost"
	"github.com/warrenhq/warren/internal/metrics"
)

// Config is tunnel-host's configuration file (tunnel-host.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`

	Relay           string        `yaml:"relay" flag:"relay" usage:"relay-server base URL, e.g. https://relay.example"`
	Tunnel          string        `yaml:"tunnel" flag:"tunnel,t" usage:"tunnel id (or name) to host"`
	APIKey          string        `yaml:"api_key" flag:"api-key" secret:"true" usage:"operator API key with the tunnels scope: creates ports and renews host tokens"`
	HostToken       string        `yaml:"host_token" flag:"host-token" secret:"true" usage:"host-scope tunnel token; without api_key it cannot be renewed"`
	Ports           []string      `yaml:"ports" flag:"port,p" usage:"local ports to expose, as PORT or PORT/PROTOCOL (http, https, ssh, ...)"`
	Mode            string        `yaml:"mode" flag:"mode" usage:"relay protocol: auto (V2, else V1), v2 or v1"`
	ControlSocket   string        `yaml:"control_socket" flag:"control-socket" usage:"unix socket for 'tunnel-host status' and 'ports'; empty means $XDG_RUNTIME_DIR/warren/tunnel-host-<tunnel>.sock or /tmp/warren-<uid>/tunnel-host-<tunnel>.sock"`
	MetricsListen   string        `yaml:"metrics_listen" flag:"metrics-listen" usage:"address to serve /metrics on; empty means off"`
	RefreshInterval time.Duration `yaml:"refresh_interval" usage:"how often ports are re-read from the relay while connected"`
	StateDir        string        `yaml:"state_dir" flag:"state-dir" usage:"directory for the host's SSH host keys (ed25519, ECDSA P-384), created if missing; empty means $XDG_STATE_HOME/warren/tunnel-host or ~/.local/state/warren/tunnel-host"`
	// The none key exchange leaves the relay socket to TLS alone.
	AllowInsecureNone bool `yaml:"allow_insecure_none" flag:"allow-insecure-none" usage:"also offer the unencrypted none SSH key exchange on a plain ws:// (http) relay that is not on loopback; by default it is offered only where TLS (wss) or loopback protects the relay socket"`
}

func defaultConfig() *Config {
	return &Config{Daemon: cli.DefaultDaemon(), Mode: "auto", RefreshInterval: 30 * time.Second}
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	switch c.Mode {
	case "auto", "v2", "v1":
	default:
		return cli.FieldErrorf("mode", "expected auto, v2 or v1, got %q", c.Mode)
	}
	if _, err := parsePorts(c.Ports); err != nil {
		return cli.FieldErrorf("ports", "%w", err)
	}
	return nil
}

// parsePort reads PORT or PORT/PROTOCOL.
func parsePort(s string) (tunnelhost.Port, error) {
	num, proto, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return tunnelhost.Port{}, fmt.Errorf("port %q: expected a number from 1 to 65535, optionally /protocol", s)
	}
	if proto == "" {
		proto = "auto"
	}
	return tunnelhost.Port{Number: uint16(n), Protocol: proto}, nil
}

func parsePorts(list []string) ([]tunnelhost.Port, error) {
	out := make([]tunnelhost.Port, 0, len(list))
	for _, s := range list {
		p, err := parsePort(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

var spec = cli.Spec{
	Name:  "tunnel-host",
	Short: "Expose local TCP ports through a warren relay tunnel",
	Long: `tunnel-host dials out to relay-server and exposes local TCP ports through a tunnel,
speaking the Dev Tunnels relay protocol (V2, with V1 fallback). It reconnects with
backoff, renews its token, and takes port changes while running: from the config on
SIGHUP, from 'tunnel-host ports add|remove', and from the management API.`,
}

// Main runs tunnel-host with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, func(cmd *cobra.Command, _ []string) error {
		return run(cmd.Context(), app, cfg)
	})
	root.AddCommand(statusCmd(app, cfg), portsCmd(app, cfg))
	app.Preflight("", func() error { return checkRun(cfg) })
	return root
}

// checkRun is what run checks before it starts, and what 'config validate'
// runs beyond the formats.
func checkRun(cfg *Config) error {
	if cfg.Relay == "" {
		return &cli.ConfigError{Key: "relay", Err: errors.New("not set: give --relay or WARREN_TUNNEL_HOST_RELAY")}
	}
	if cfg.Tunnel == "" {
		return &cli.ConfigError{Key: "tunnel", Err: errors.New("not set: give --tunnel or WARREN_TUNNEL_HOST_TUNNEL")}
	}
	if cfg.APIKey == "" && cfg.HostToken == "" {
		return &cli.ConfigError{Key: "api_key", Err: errors.New("no credential: set api_key(_file) or host_token(_file)")}
	}
	return nil
}

func run(ctx context.Context, app *cli.App, cfg *Config) error {
	if err := checkRun(cfg); err != nil {
		return err
	}
	ports, _ := parsePorts(cfg.Ports)
	dir, err := stateDir(cfg)
	if err != nil {
		return err
	}
	keys, err := hostkeys.LoadOrCreate(dir)
	if err != nil {
		return &cli.ConfigError{Key: "state_dir", Where: app.Source("state_dir"), Err: err}
	}
	reg := metrics.NewRegistry("tunnel-host")
	host, err := tunnelhost.New(tunnelhost.Config{
		RelayURL:        strings.TrimRight(cfg.Relay, "/"),
		TunnelID:        cfg.Tunnel,
		APIKey:          cfg.APIKey,
		HostToken:       cfg.HostToken,
		Ports:           ports,
		Mode:            tunnelhost.Mode(cfg.Mode),
		RefreshInterval: cfg.RefreshInterval,
		Registerer:      reg,

		HostKeys:          keys,
		AllowInsecureNone: cfg.AllowInsecureNone,
	}, app.Logger) // the engine adds tunnel= itself
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	sock := controlPath(cfg)
	ctl, err := listenControl(sock, host)
	if err != nil {
		return fmt.Errorf("control socket %s (control_socket): %w", sock, err)
	}
	defer ctl.close()
	if cfg.MetricsListen != "" {
		stop, err := cli.ServeMetrics(cfg.MetricsListen, reg)
		if err != nil {
			return fmt.Errorf("metrics listener %s (metrics_listen): %w", cfg.MetricsListen, err)
		}
		defer stop()
	}
	app.OnReload(func(ctx context.Context, fresh any) error {
		nc := fresh.(*Config)
		ps, err := parsePorts(nc.Ports)
		if err != nil {
			return err
		}
		return host.SetPorts(ctx, ps)
	})
	app.Logger.Info("tunnel-host starting", "relay", cfg.Relay, "tunnel", cfg.Tunnel, "ports", strings.Join(cfg.Ports, ","), "control", sock)
	err = app.RunDaemon(ctx, host.Run)
	if errors.Is(err, tunnelhost.ErrReplaced) {
		return fmt.Errorf("stopped: replaced by another host for tunnel %s: %w", cfg.Tunnel, err)
	}
	return err
}

// controlPath is the configured socket, or a per-user, per-tunnel default.
// stateDir is where the host keeps its SSH host keys, so that the keys
// its endpoint publishes survive restarts.
func stateDir(cfg *Config) (string, error) {
	if cfg.StateDir != "" {
		return cfg.StateDir, nil
	}
	dir, err := cli.StatePath("the SSH host keys", "tunnel-host")
	if err != nil {
		return "", &cli.ConfigError{Key: "state_dir", Err: err}
	}
	return dir, nil
}

func controlPath(cfg *Config) string {
	if cfg.ControlSocket != "" {
		return cfg.ControlSocket
	}
	name := "tunnel-host-" + cfg.Tunnel + ".sock"
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return d + "/warren/" + name
	}
	return fmt.Sprintf("%s/warren-%d/%s", os.TempDir(), os.Getuid(), name)
}
