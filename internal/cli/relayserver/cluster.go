package relayserver

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/cluster"
)

func clusterCmd(app *cli.App, cfg *Config) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the relay nodes sharing this relay-server's store",
		Args:  cobra.NoArgs,
	}
	flags.register(cmd)
	status := &cobra.Command{
		Use:   "status",
		Short: "List the nodes: lease, liveness and what each holds (endpoints, wings, tickets)",
		Args:  cobra.NoArgs,
	}
	out := cli.AddOutputFlag(status)
	status.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := flags.client(cfg)
		if err != nil {
			return err
		}
		var st cluster.Status
		if err := c.do(cmd.Context(), "cluster status", "GET", "/api/v1/cluster", nil, &st); err != nil {
			return err
		}
		if out.JSON() {
			return cli.WriteJSON(app.Stdout, st)
		}
		fmt.Fprintf(app.Stdout, "answered by node %s at %s (lease %s)\n", st.Self, st.At.Format(time.RFC3339), st.Lease)
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATE\tLEASE ENDS\tENDPOINTS\tWINGS\tTICKETS\tINTERNAL URL\tPUBLIC URL")
		for _, n := range st.Nodes {
			state, ends := "alive", "-"
			switch {
			case !n.Registered:
				state = "unregistered"
			case !n.Alive:
				state = "dead"
			}
			if n.Expires != nil {
				ends = n.Expires.Sub(st.At).Round(100 * time.Millisecond).String()
				if n.Expires.Before(st.At) {
					ends = "ended " + st.At.Sub(*n.Expires).Round(100*time.Millisecond).String() + " ago"
				}
			}
			self := ""
			if n.Self {
				self = " (self)"
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", n.ID, self, state, ends,
				n.Holds.Endpoints, n.Holds.Wings, n.Holds.Tickets, dash(n.InternalURL), dash(n.PublicURL))
		}
		return tw.Flush()
	}
	cmd.AddCommand(status)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
