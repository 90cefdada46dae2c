// Package tunnelserver is the command line of tunnel-server, the DTLS
// endpoint of the TURN overlay.
package tunnelserver

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

var spec = cli.Spec{
	Name:  "tunnel-server",
	Short: "DTLS endpoint of the TURN overlay, with UDP or TCP egress",
}

// Main runs tunnel-server with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	// Only the shared daemon keys so far; its own commands come with its issue.
	cfg := cli.DefaultDaemon()
	return app.NewRoot(&cfg, nil)
}
