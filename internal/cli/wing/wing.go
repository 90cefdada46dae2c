// Package wing is the command line of wing, the machine agent that gives its
// users end-to-end encrypted terminals through a warren relay.
package wing

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

var spec = cli.Spec{
	Name:  "wing",
	Short: "Machine agent with end-to-end encrypted terminals through a warren relay",
}

// Main runs wing with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	// Only the shared daemon keys so far; its own commands come with its issue.
	cfg := cli.DefaultDaemon()
	return app.NewRoot(&cfg, nil)
}
