// Package tunnelclient is the command line of tunnel-client, the consuming
// side of port tunnels (`connect`) and of the TURN overlay (`turn`).
package tunnelclient

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelclient"
)

// Config is tunnel-client's configuration file (tunnel-client.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`

	Relay        string   `yaml:"relay" flag:"relay" usage:"relay-server base URL, e.g. https://relay.example"`
	APIKey       string   `yaml:"api_key" flag:"api-key" secret:"true" usage:"operator API key with the tunnels scope, used to get connect tokens"`
	ConnectToken string   `yaml:"connect_token" flag:"connect-token" secret:"true" usage:"connect-scope tunnel token (instead of api_key)"`
	Bind         string   `yaml:"bind" flag:"bind" usage:"local address the forwarded ports listen on"`
	PortMap      []string `yaml:"port_map" flag:"port-map" usage:"REMOTE:LOCAL pairs; unmapped ports listen on the same number"`
	Mode         string   `yaml:"mode" flag:"mode" cmd:"connect" usage:"relay protocol: auto (V2, else V1), v2 or v1"`
	E2E          bool     `yaml:"e2e" flag:"e2e" cmd:"connect" usage:"ask the host to encrypt each V2 stream end to end, so the relay sees only ciphertext (off: the relay is your own and TLS protects its legs; V1 is end to end anyway)"`
	// The none key exchange leaves a V2 relay socket to TLS alone.
	AllowInsecureNone bool `yaml:"allow_insecure_none" flag:"allow-insecure-none" cmd:"connect" usage:"also offer the unencrypted none SSH key exchange on a plain ws:// (http) relay that is not on loopback; by default it is offered only where TLS (wss) or loopback protects the relay socket"`

	// Turn holds the keys of `tunnel-client turn`; their flags exist on
	// that subcommand only.
	Turn TurnConfig `yaml:"turn" cmd:"turn"`
	// Control holds the keys of `tunnel-client control`, the local API.
	Control ControlConfig `yaml:"control" cmd:"control"`
}

// RemovedKeys names keys that older versions had, so a config still
// setting one is told why it is refused.
func (*Config) RemovedKeys() map[string]string {
	return map[string]string{"turn.dtls": "the overlay is always DTLS-protected; delete the line"}
}

func defaultConfig() *Config {
	return &Config{Daemon: cli.DefaultDaemon(), Bind: "127.0.0.1", Mode: "auto", Turn: defaultTurnConfig(), Control: defaultControlConfig()}
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	switch c.Mode {
	case "auto", "v2", "v1":
	default:
		return cli.FieldErrorf("mode", "expected auto, v2 or v1, got %q", c.Mode)
	}
	if _, err := parsePortMap(c.PortMap); err != nil {
		return cli.FieldErrorf("port_map", "%w", err)
	}
	if err := c.Turn.validate(); err != nil {
		return err
	}
	return c.Control.validate()
}

func parsePortMap(list []string) (map[uint16]uint16, error) {
	m := map[uint16]uint16{}
	for _, s := range list {
		r, l, ok := strings.Cut(s, ":")
		rn, err1 := strconv.ParseUint(r, 10, 16)
		ln, err2 := strconv.ParseUint(l, 10, 16)
		if !ok || err1 != nil || err2 != nil || rn == 0 || ln == 0 {
			return nil, fmt.Errorf("%q: expected REMOTE:LOCAL port numbers, e.g. 8080:18080", s)
		}
		m[uint16(rn)] = uint16(ln)
	}
	return m, nil
}

var spec = cli.Spec{
	Name:  "tunnel-client",
	Short: "Reach tunnel ports through a warren relay",
}

// Main runs tunnel-client with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, nil)
	root.AddCommand(connectCmd(app, cfg), turnCmd(app, cfg), controlCmd(app, cfg))
	return root
}

func connectCmd(app *cli.App, cfg *Config) *cobra.Command {
	app.Preflight("connect", func() error { return checkConnect(cfg) })
	cmd := &cobra.Command{
		Use:   "connect TUNNEL",
		Short: "Listen locally for every port of a tunnel and forward connections through the relay",
		Long: `connect maps each port of TUNNEL to a local listener (the same number unless
--port-map says otherwise), follows ports the host adds and removes, and reconnects
with backoff. It prints one line per port when it is ready, so scripts can wait on
it (-o json prints JSON events instead).`,
		Args: cobra.ExactArgs(1),
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return connect(cmd.Context(), app, cfg, args[0], out)
	}
	return cmd
}

// checkConnect is what connect checks before it starts, and what
// 'config validate connect' runs beyond the formats.
func checkConnect(cfg *Config) error {
	if cfg.Relay == "" {
		return &cli.ConfigError{Key: "relay", Err: errors.New("not set: give --relay or WARREN_TUNNEL_CLIENT_RELAY")}
	}
	if cfg.APIKey == "" && cfg.ConnectToken == "" {
		return &cli.ConfigError{Key: "api_key", Err: errors.New("no credential: set api_key(_file) or connect_token(_file)")}
	}
	return nil
}

func connect(ctx context.Context, app *cli.App, cfg *Config, tunnel string, out *cli.Output) error {
	if err := checkConnect(cfg); err != nil {
		return err
	}
	pm, _ := parsePortMap(cfg.PortMap)
	c, err := tunnelclient.New(tunnelclient.Config{
		RelayURL:     strings.TrimRight(cfg.Relay, "/"),
		TunnelID:     tunnel,
		APIKey:       cfg.APIKey,
		ConnectToken: cfg.ConnectToken,
		Mode:         cfg.Mode,
		E2E:          cfg.E2E,
		Bind:         cfg.Bind,
		PortMap:      pm,

		AllowInsecureNone: cfg.AllowInsecureNone,
	}, app.Logger)
	if err != nil {
		return &cli.ConfigError{Err: err}
	}
	events := make(chan tunnelclient.Event, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range events {
			printEvent(app, out, ev)
		}
	}()
	err = app.RunDaemon(ctx, func(ctx context.Context) error { return c.Run(ctx, events) })
	close(events)
	<-done
	return err
}

func printEvent(app *cli.App, out *cli.Output, ev tunnelclient.Event) {
	if out.JSON() {
		e := map[string]any{"event": ev.Kind, "time": time.Now().UTC().Format(time.RFC3339Nano)}
		if ev.RemotePort != 0 {
			e["remote_port"] = ev.RemotePort
		}
		if ev.LocalPort != 0 {
			e["local_port"] = ev.LocalPort
		}
		if ev.Addr != "" {
			e["addr"] = ev.Addr
		}
		if ev.Err != nil {
			e["error"] = ev.Err.Error()
		}
		cli.WriteJSONLine(app.Stdout, e)
		return
	}
	switch {
	case ev.Err != nil:
		fmt.Fprintf(app.Stderr, "port %d: %v\n", ev.RemotePort, ev.Err)
	case ev.Kind == "ready":
		fmt.Fprintf(app.Stdout, "ready %d -> %s\n", ev.RemotePort, ev.Addr)
	case ev.Kind == "removed":
		fmt.Fprintf(app.Stdout, "removed %d\n", ev.RemotePort)
	}
}
