// Package tunnelhost is the command line of tunnel-host, which exposes
// local TCP ports through a warren relay tunnel.
package tunnelhost

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

var spec = cli.Spec{
	Name:  "tunnel-host",
	Short: "Expose local TCP ports through a warren relay tunnel",
}

// Main runs tunnel-host with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	// Only the shared daemon keys so far; its own commands come with its issue.
	cfg := cli.DefaultDaemon()
	return app.NewRoot(&cfg, nil)
}
