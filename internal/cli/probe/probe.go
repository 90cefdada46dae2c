// Package probe is the command line of probe, which checks relays, tunnels,
// wings, ticket relays and TURN overlays for CI and cron. Its exit codes
// follow the Nagios plugin contract: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
package probe

import (
	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

var spec = cli.Spec{
	Name:   "probe",
	Short:  "Check warren relays, tunnels, wings and TURN overlays (Nagios exit codes)",
	Nagios: true,
}

// Main runs probe with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := cli.DefaultLogging()
	return app.NewRoot(&cfg, nil)
}
