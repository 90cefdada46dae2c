// Package tunnelhost is the command line of tunnel-host, which exposes
// local TCP ports through a warren relay tunnel.
package tunnelhost

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

// Config is tunnel-host's configuration file (tunnel-host.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`
}

func defaultConfig() *Config { return &Config{Daemon: cli.DefaultDaemon()} }

var spec = cli.Spec{
	Name:  "tunnel-host",
	Short: "Expose local TCP ports through a warren relay tunnel",
}

// Main runs tunnel-host with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	return app.NewRoot(defaultConfig(), nil)
}
