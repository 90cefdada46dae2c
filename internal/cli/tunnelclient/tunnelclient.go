// Package tunnelclient is the command line of tunnel-client, the consuming
// side of port tunnels and of the TURN overlay.
package tunnelclient

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

var spec = cli.Spec{
	Name:  "tunnel-client",
	Short: "Reach tunnel ports through a warren relay, or carry UDP/TCP through a TURN server",
}

// Main runs tunnel-client with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	// Only the shared daemon keys so far; its own commands come with its issue.
	cfg := cli.DefaultDaemon()
	return app.NewRoot(&cfg, nil)
}
