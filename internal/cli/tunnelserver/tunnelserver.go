// Package tunnelserver is the command line of tunnel-server, the DTLS
// endpoint of the TURN overlay.
package tunnelserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/metrics"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnserver"
)

// Config is tunnel-server's configuration file (tunnel-server.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`

	Listen           string        `yaml:"listen" flag:"listen" usage:"UDP address of the DTLS listener the TURN relay reaches"`
	Connect          string        `yaml:"connect" flag:"connect" usage:"upstream host:port every session is forwarded to (required)"`
	Egress           string        `yaml:"egress" flag:"egress" usage:"overlay: udp (raw datagrams) or tcp (KCP+smux streams, one TCP dial each); must match the client's ingress"`
	HandshakeTimeout time.Duration `yaml:"handshake_timeout" flag:"handshake-timeout" usage:"DTLS handshake timeout per session"`
	IdleTimeout      time.Duration `yaml:"idle_timeout" flag:"idle-timeout" usage:"a udp session with no traffic in one direction for this long is closed"`
	PSK              string        `yaml:"psk" flag:"psk" secret:"true" usage:"pre-shared key(s): one base64 key (identity \"default\"), or lines of \"<identity> <base64 key>\" (# comments); a psk_file holds the multi-identity list"`
	Compat           bool          `yaml:"compat_unauthenticated" flag:"compat-unauthenticated" usage:"also accept the unauthenticated vk-turn-proxy prototype profile (anyone who reaches the listener gets a relay to connect)"`
	MetricsListen    string        `yaml:"metrics_listen" flag:"metrics-listen" usage:"address to serve /metrics on; empty means off"`
}

func defaultConfig() *Config {
	return &Config{Daemon: cli.DefaultDaemon(), Listen: "0.0.0.0:56000", Egress: "udp",
		HandshakeTimeout: 30 * time.Second, IdleTimeout: 30 * time.Minute}
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	switch c.Egress {
	case "udp", "tcp":
	default:
		return cli.FieldErrorf("egress", "expected udp or tcp, got %q", c.Egress)
	}
	if c.Connect != "" {
		if _, _, err := net.SplitHostPort(c.Connect); err != nil {
			return cli.FieldErrorf("connect", "%q is not host:port", c.Connect)
		}
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return cli.FieldErrorf("listen", "%q is not host:port", c.Listen)
	}
	if c.PSK != "" {
		if _, err := overlay.ParseServerKeys(c.PSK); err != nil {
			return cli.FieldErrorf("psk", "%w", err)
		}
	}
	return nil
}

var spec = cli.Spec{
	Name:  "tunnel-server",
	Short: "DTLS endpoint of the TURN overlay, with UDP or TCP egress",
}

// Main runs tunnel-server with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return cli.Usagef("unexpected argument %q", args[0])
		}
		return run(cmd.Context(), app, cfg)
	})
	root.Long = `tunnel-server terminates the DTLS sessions that tunnel-client workers open
through a TURN relay and forwards each to --connect. Peers authenticate with a
pre-shared key (psk / psk_file, never on the command line); with
--compat-unauthenticated it also accepts the vk-turn-proxy prototype's
unauthenticated clients.`
	app.Preflight("", func() error { _, err := checkRun(cfg); return err })
	return root
}

// checkRun is what run checks before it listens, and what 'config
// validate' runs beyond the formats. It returns the parsed keys.
func checkRun(cfg *Config) (map[string][]byte, error) {
	if cfg.Connect == "" {
		return nil, &cli.ConfigError{Key: "connect", Err: errors.New("not set: give --connect or WARREN_TUNNEL_SERVER_CONNECT (the upstream host:port)")}
	}
	var keys map[string][]byte
	if cfg.PSK != "" {
		var err error
		if keys, err = overlay.ParseServerKeys(cfg.PSK); err != nil {
			return nil, &cli.ConfigError{Key: "psk", Err: err}
		}
	}
	if len(keys) == 0 && !cfg.Compat {
		return nil, &cli.ConfigError{Key: "psk", Err: errors.New("no pre-shared key: set psk (WARREN_TUNNEL_SERVER_PSK) or psk_file (--psk-file), or compat_unauthenticated to accept unauthenticated prototype peers")}
	}
	return keys, nil
}

func run(ctx context.Context, app *cli.App, cfg *Config) error {
	keys, err := checkRun(cfg)
	if err != nil {
		return err
	}
	if cfg.Compat {
		app.Logger.Warn("compat_unauthenticated is on: clients without a PSK are accepted, and anyone who reaches the listener gets a relay to the upstream",
			"stage", overlay.StagePolicyValidate, "upstream", cfg.Connect)
	}
	reg := metrics.NewRegistry("tunnel-server")
	srv, err := turnserver.New(turnserver.Config{
		Listen: cfg.Listen, Connect: cfg.Connect, Egress: cfg.Egress,
		HandshakeTimeout: cfg.HandshakeTimeout, IdleTimeout: cfg.IdleTimeout,
		Keys: keys, Compat: cfg.Compat, Registry: reg,
	}, app.Logger)
	if err != nil {
		return failure(err)
	}
	if cfg.MetricsListen != "" {
		stop, err := cli.ServeMetrics(cfg.MetricsListen, reg)
		if err != nil {
			return failure(overlay.Errorf(overlay.StageMetricsListen, "metrics listener %s (metrics_listen): %w", cfg.MetricsListen, err))
		}
		defer stop()
	}
	addr, err := srv.Listen()
	if err != nil {
		return failure(err)
	}
	fmt.Fprintf(app.Stdout, "listening %s egress=%s connect=%s\n", addr, cfg.Egress, cfg.Connect)
	return failure(app.RunDaemon(ctx, srv.Serve))
}

// failure formats a staged error as "server runtime failed stage=<s>: <msg>".
func failure(err error) error {
	var se *overlay.StageError
	if err == nil || !errors.As(err, &se) {
		return err
	}
	msg := fmt.Errorf("server runtime failed stage=%s: %s", se.Stage, se.Msg())
	if se.Stage == overlay.StagePolicyValidate {
		return &cli.ConfigError{Err: msg}
	}
	return msg
}
