// Package probe is the command line of probe, which checks relays, tunnels,
// wings, ticket relays and TURN overlays for CI and cron. Its exit codes
// follow the Nagios plugin contract: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/buildinfo"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/metrics"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/probe/checks"
	"github.com/warrenhq/warren/internal/redact"
)

func init() {
	// Kinds are registered once per process.
	if err := checks.Register(probe.Default); err != nil {
		panic(err)
	}
}

// Config is probe's configuration file (probe.yaml), checks included.
type Config struct {
	cli.Daemon `yaml:",inline"`

	Timeout     time.Duration `yaml:"timeout" usage:"timeout of a check that sets none"`
	Concurrency int           `yaml:"concurrency" usage:"how many checks run at once (0: all)"`
	Textfile    string        `yaml:"textfile" flag:"textfile" cmd:"run" usage:"write Prometheus textfile-collector metrics to this path (atomically) after each run"`
	Artifacts   string        `yaml:"artifacts" flag:"artifacts" cmd:"run" usage:"keep a sanitized JSON artifact per failed check in DIR/<check>/probe-artifact.json"`
	Serve       ServeConfig   `yaml:"serve" cmd:"serve"`
	Resolve     ResolveConfig `yaml:"resolve" cmd:"resolve"`
	// TURNRestSecret is the turn-rest shared secret of probe resolve
	// (env WARREN_PROBE_TURN_REST_SECRET, or turn_rest_secret_file).
	TURNRestSecret string      `yaml:"turn_rest_secret" flag:"turn-rest-secret" secret:"true" cmd:"resolve" usage:"turn-rest shared secret for probe resolve (coturn static-auth-secret)"`
	Checks         probe.Specs `yaml:"checks" usage:"the checks: a list of {name, kind, timeout, warning, critical, <kind keys>}; see 'probe checks'"`

	built int // checks that Validate built
}

// ServeConfig is the `probe serve` section.
type ServeConfig struct {
	Listen   string        `yaml:"listen" flag:"listen" usage:"address of the HTTP server (/metrics, status page, /status.json)"`
	Interval time.Duration `yaml:"interval" flag:"interval" usage:"time between the starts of two runs"`
}

func defaultConfig() *Config {
	return &Config{
		Daemon:  cli.DefaultDaemon(),
		Timeout: 10 * time.Second,
		Serve:   ServeConfig{Listen: "127.0.0.1:9810", Interval: time.Minute},
		Resolve: ResolveConfig{OutputDir: "artifacts"},
	}
}

// Validate builds every check, so a bad check is a config error (exit 3)
// naming the file, the check and the key before anything runs. Secret
// files and env are read here.
func (c *Config) Validate() error {
	switch {
	case c.Timeout <= 0:
		return cli.FieldErrorf("timeout", "must be positive")
	case c.Concurrency < 0:
		return cli.FieldErrorf("concurrency", "must not be negative")
	case c.Serve.Interval <= 0:
		return cli.FieldErrorf("serve.interval", "must be positive")
	}
	if _, _, err := net.SplitHostPort(c.Serve.Listen); err != nil {
		return cli.FieldErrorf("serve.listen", "expected host:port: %w", err)
	}
	built, err := probe.Build(c.Checks, buildOptions(c, redact.NewRedactor(), nil))
	if err != nil {
		return &cli.FieldError{Key: "checks", Err: err}
	}
	c.built = len(built)
	return nil
}

var spec = cli.Spec{
	Name:   "probe",
	Short:  "Check warren relays, tunnels, wings and TURN overlays (Nagios exit codes)",
	Nagios: true,
	Long: `probe runs the checks listed in its config file (checks:) concurrently, each
with a timeout and latency thresholds, and exits with the Nagios code of the
worst result: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (bad config included).`,
}

// Main runs probe with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, nil)
	root.AddCommand(runCmd(app, cfg), serveCmd(app, cfg), checksCmd(app), providersCmd(app), resolveCmd(app, cfg))
	return root
}

// runner builds the checks again, now with the configured logger (Validate
// ran before logging was set up; it proved the list builds). Engines the
// checks drive (the tunnel client) log through it only at debug level.
func runner(app *cli.App, cfg *Config) (*probe.Runner, error) {
	red := redact.NewRedactor()
	built, err := probe.Build(cfg.Checks, buildOptions(cfg, red, app.Logger))
	if err != nil {
		return nil, &cli.ConfigError{Key: "checks", Where: app.ConfigFile(), Err: err}
	}
	return &probe.Runner{Checks: built, Logger: app.Logger, Redactor: red, Concurrency: cfg.Concurrency}, nil
}

func buildOptions(cfg *Config, red *redact.Redactor, log *slog.Logger) probe.BuildOptions {
	return probe.BuildOptions{
		DefaultTimeout: cfg.Timeout,
		Secrets:        probe.SecretSource{ReadFile: os.ReadFile, LookupEnv: os.LookupEnv},
		Env:            probe.Env{Redactor: red, Logger: log},
	}
}

func probeInfo() map[string]string {
	i := buildinfo.Get()
	return map[string]string{"version": i.Version, "commit": i.Commit}
}

func runCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run every configured check once; print a summary line first; exit with the worst Nagios code",
		Long: `run runs the checks of the config file concurrently and prints a summary line
(with Nagios performance data) followed by one line per check, or the JSON
report with -o json. --textfile writes Prometheus textfile-collector metrics,
--artifacts keeps a sanitized JSON artifact per failed check.

Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (also: bad config, no checks).`,
		Args: cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return runOnce(cmd.Context(), app, cfg, out)
	}
	return cmd
}

func runOnce(ctx context.Context, app *cli.App, cfg *Config, out *cli.Output) error {
	if cfg.built == 0 {
		file := app.ConfigFile()
		if file == "" {
			file = "no config file found"
		}
		return &cli.ConfigError{Key: "checks", Where: file, Err: errors.New("no checks configured; add a checks: list (see 'probe checks --example')")}
	}
	rn, err := runner(app, cfg)
	if err != nil {
		return err
	}
	rep := rn.Run(ctx)
	var failures []error
	if cfg.Artifacts != "" {
		if err := probe.WriteArtifacts(cfg.Artifacts, rep, rn.Redactor, probeInfo()); err != nil {
			failures = append(failures, fmt.Errorf("artifacts: %w", err))
		}
	}
	if cfg.Textfile != "" {
		if err := probe.WriteTextfile(cfg.Textfile, rep); err != nil {
			failures = append(failures, err)
		}
	}
	if out.JSON() {
		err = rep.WriteJSON(app.Stdout)
	} else {
		err = rep.WriteText(app.Stdout)
	}
	if err != nil {
		failures = append(failures, err)
	}
	if len(failures) > 0 {
		// The verdict is incomplete if its evidence could not be kept.
		return &cli.ExitError{Code: cli.NagiosUnknown, Err: errors.Join(failures...)}
	}
	if rep.Status == probe.OK {
		return nil
	}
	return cli.Exit(rep.Status.ExitCode())
}

func serveCmd(app *cli.App, cfg *Config) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the checks on an interval and serve /metrics, a status page and /status.json",
		Long: `serve runs the configured checks every serve.interval and serves, on
serve.listen: /metrics (Prometheus), / (an HTML status page), /status.json (the
'run -o json' report; HTTP 503 when CRITICAL or UNKNOWN) and /healthz. The
textfile and artifacts keys apply after each run. SIGHUP reloads the checks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rn, err := runner(app, cfg)
			if err != nil {
				return err
			}
			reg := metrics.NewRegistry("probe")
			srv, err := probe.NewServer(probe.ServerConfig{
				Interval: cfg.Serve.Interval, Textfile: cfg.Textfile, Artifacts: cfg.Artifacts,
				Registry: reg, ProbeInfo: probeInfo(),
			}, rn, app.Logger)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", cfg.Serve.Listen)
			if err != nil {
				return &cli.ExitError{Code: cli.NagiosUnknown, Err: fmt.Errorf("listen %s: %w", cfg.Serve.Listen, err)}
			}
			app.Logger.Info("serving", "addr", ln.Addr().String(), "checks", cfg.built, "interval", cfg.Serve.Interval)
			app.OnReload(func(_ context.Context, fresh any) error {
				rn, err := runner(app, fresh.(*Config))
				if err != nil {
					return err
				}
				srv.SetRunner(rn)
				return nil
			})
			return app.RunDaemon(cmd.Context(), func(ctx context.Context) error { return srv.Serve(ctx, ln) })
		},
	}
}

func checksCmd(app *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "checks",
		Short: "List the check kinds (--example prints a checks list with one of each)",
		Args:  cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	example := cmd.Flags().Bool("example", false, "print an example checks: list with every kind")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		kinds := probe.Default.Kinds()
		switch {
		case *example:
			_, err := fmt.Fprintf(app.Stdout, "checks:\n%s", indent(probe.ExampleYAML(probe.Default)))
			return err
		case out.JSON():
			list := []map[string]string{}
			for _, k := range kinds {
				list = append(list, map[string]string{"kind": k.Name, "summary": k.Summary})
			}
			return cli.WriteJSON(app.Stdout, list)
		}
		for _, k := range kinds {
			if _, err := fmt.Fprintf(app.Stdout, "%-14s %s\n", k.Name, k.Summary); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd
}

func indent(s string) string {
	var b []byte
	start := true
	for i := 0; i < len(s); i++ {
		if start && s[i] != '\n' {
			b = append(b, ' ', ' ')
		}
		b = append(b, s[i])
		start = s[i] == '\n'
	}
	return string(b)
}
