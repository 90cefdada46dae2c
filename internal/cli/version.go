package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/buildinfo"
)

func buildVersion(name string) string {
	i := buildinfo.Get()
	return fmt.Sprintf("%s %s (commit %s, built %s, %s %s)", name, i.Version, i.Commit, i.Date, i.GoVersion, i.Platform)
}

func (a *App) versionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print version, commit, build date and Go version",
		Args:  cobra.NoArgs,
	}
	out := AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if out.JSON() {
			return WriteJSON(a.Stdout, struct {
				Binary string `json:"binary"`
				buildinfo.Info
			}{a.Name, buildinfo.Get()})
		}
		_, err := fmt.Fprintln(a.Stdout, buildVersion(a.Name))
		return err
	}
	return cmd
}
