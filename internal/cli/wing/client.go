package wing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	wattach "github.com/warrenhq/warren/internal/wing/attach"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

func lsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the wings your user token can reach",
		Args:  cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := needUserToken(cfg); err != nil {
			return err
		}
		c, err := newClient(cfg)
		if err != nil {
			return err
		}
		wings, err := c.Wings(cmd.Context())
		if err != nil {
			return userErr(err)
		}
		for _, w := range wings {
			if err := c.VerifyKey(w.WingID, w.PublicKey); err != nil {
				return err
			}
		}
		if out.JSON() {
			return cli.WriteJSON(app.Stdout, wings)
		}
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "WING\tHOSTNAME\tPLATFORM\tVERSION\tAGENTS\tPUBLIC KEY")
		for _, w := range wings {
			agents := strings.Join(w.Agents, ",")
			if agents == "" {
				agents = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", w.WingID, w.Hostname, w.Platform, w.Version, agents, w.PublicKey)
		}
		return tw.Flush()
	}
	return cmd
}

func userErr(err error) error {
	if errors.Is(err, wingclient.ErrUnauthorized) {
		return fmt.Errorf("%w: check user_token (mint one with 'relay-server wings token --kind user')", err)
	}
	return err
}

type attachOptions struct {
	session  string
	command  string
	agent    string
	cwd      string
	spectate bool
}

func attachCmd(app *cli.App, cfg *Config) *cobra.Command {
	o := &attachOptions{}
	cmd := &cobra.Command{
		Use:   "attach [WING]",
		Short: "Start or reattach a terminal session on a wing in this terminal",
		Long: `attach starts a session on WING (the only wing you have, when omitted), or
reattaches --session ID with a replay of its screen. In a terminal it switches
to raw mode, follows window size changes, and detaches on the detach key
(default ctrl-]). When stdin is not a terminal, it is sent as input and an
end-of-file (ctrl-D) follows it. The remote program's exit code becomes
attach's exit code.

  wing attach                       # a shell on your only wing
  wing attach --command 'uname -a'  # run one command, print its output
  echo 'ls; exit 3' | wing attach   # scripted input`,
		Args: cobra.MaximumNArgs(1),
	}
	f := cmd.Flags()
	f.StringVar(&o.session, "session", "", "reattach this session instead of starting one")
	f.StringVar(&o.command, "command", "", "run this command line (sh -c) instead of the shell")
	f.StringVar(&o.agent, "agent", "", "run this agent of the wing instead of the shell")
	f.StringVar(&o.cwd, "cwd", "", "working directory on the wing")
	f.BoolVar(&o.spectate, "spectate", false, "watch --session read-only (the wing must allow spectators); keys are not sent, ctrl-C or the detach key leaves")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		wing := ""
		if len(args) == 1 {
			wing = args[0]
		}
		return attach(cmd.Context(), app, cfg, o, wing)
	}
	return cmd
}

func attach(ctx context.Context, app *cli.App, cfg *Config, o *attachOptions, wingID string) error {
	if err := needUserToken(cfg); err != nil {
		return err
	}
	if o.session != "" && (o.command != "" || o.agent != "") {
		return cli.Usagef("--session reattaches; it does not go with --command or --agent")
	}
	if o.spectate && o.session == "" {
		return cli.Usagef("--spectate needs --session ID (wing sessions lists them)")
	}
	if o.command != "" && o.agent != "" {
		return cli.Usagef("give --command or --agent, not both")
	}
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	err = wattach.Run(ctx, wattach.Options{Client: c, WingID: wingID, SessionID: o.session, Command: o.command,
		Agent: o.agent, Cwd: o.cwd, Spectate: o.spectate, In: os.Stdin, Out: app.Stdout, Status: app.Stderr,
		Terminal: os.Stdin, DetachKey: cfg.Attach.DetachKey, Reconnect: cfg.Attach.Reconnect, Logger: app.Logger,
		Direct: directOptions(cfg)})
	return attachErr(err)
}

// attachErr words attach's errors for the command line and gives them
// their exit codes: the remote program's code, 2 for what the user can fix
// with flags, 1 otherwise.
func attachErr(err error) error {
	var (
		ambiguous *wattach.AmbiguousWingError
		noShell   *wattach.NoShellError
		remote    *wattach.RemoteError
		exit      *wattach.ExitError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wattach.ErrNoWing):
		return errors.New("no wing of yours is connected to the relay (wing ls lists them)")
	case errors.As(err, &ambiguous):
		return cli.Usagef("you have %d wings; name one: %s", len(ambiguous.WingIDs), strings.Join(ambiguous.WingIDs, ", "))
	case errors.As(err, &noShell):
		what := "shell"
		if noShell.Command {
			what = "shell to run --command with"
		}
		return cli.Usagef("wing %s offers no %s, only the agents %s; start one with --agent NAME (e.g. wing attach --agent %s %s)",
			noShell.WingID, what, strings.Join(noShell.Agents, ", "), noShell.Agents[0], noShell.WingID)
	case errors.As(err, &remote):
		msg := remote.Msg
		if strings.HasPrefix(msg, "unsupported agent") || strings.HasPrefix(msg, "unknown agent") {
			msg += fmt.Sprintf(" (wing info %s lists the agents it offers; pick one with --agent NAME)", remote.WingID)
		}
		return &cli.ExitError{Code: max(remote.Code, 1), Err: fmt.Errorf("wing %s: %s", remote.WingID, msg)}
	case errors.As(err, &exit):
		return &cli.ExitError{Code: exit.Code}
	}
	return userErr(err)
}
