package wing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
	"golang.org/x/term"
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
	detachKey, _ := parseDetachKey(cfg.Attach.DetachKey)
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	var wings []wp.WingInfo
	if wingID == "" {
		var err error
		if wings, err = c.Wings(ctx); err != nil {
			return userErr(err)
		}
		switch len(wings) {
		case 0:
			return errors.New("no wing of yours is connected to the relay (wing ls lists them)")
		case 1:
			wingID = wings[0].WingID
		default:
			ids := make([]string, len(wings))
			for i, w := range wings {
				ids[i] = w.WingID
			}
			return cli.Usagef("you have %d wings; name one: %s", len(wings), strings.Join(ids, ", "))
		}
	} else if o.session == "" && o.agent == "" {
		// Best effort: a relay that does not list wings to a Bearer token
		// (wingthing's) leaves the wing to answer for itself.
		wings, _ = c.Wings(ctx)
	}
	if o.session == "" && o.agent == "" {
		if err := needShell(wings, wingID, o.command != ""); err != nil {
			return err
		}
	}

	stdin := int(os.Stdin.Fd())
	isTTY := term.IsTerminal(stdin)
	cols, rows := 80, 24
	if isTTY {
		if w, h, err := term.GetSize(stdin); err == nil && w > 0 && h > 0 {
			cols, rows = w, h
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess, err := c.Open(ctx, wingclient.SessionOptions{WingID: wingID, SessionID: o.session, Agent: o.agent,
		Command: o.command, Cwd: o.cwd, Cols: cols, Rows: rows, Spectate: o.spectate})
	if err != nil {
		return userErr(err)
	}
	defer sess.Close()

	var restore func()
	if isTTY {
		st, err := term.MakeRaw(stdin)
		if err != nil {
			return fmt.Errorf("raw mode: %w", err)
		}
		restore = func() { term.Restore(stdin, st) }
		defer restore()
	}
	status := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if isTTY {
			msg = "\r\n" + msg + "\r\n"
		} else {
			msg += "\n"
		}
		io.WriteString(app.Stderr, msg)
	}

	started := make(chan struct{})
	var startedOnce bool
	onEvent := func(ev wingclient.Event) {
		switch ev.Kind {
		case "started":
			if !startedOnce {
				startedOnce = true
				if isTTY && detachKey != 0 {
					status("[wing: session %s on %s; detach with %s]", ev.SessionID, wingID, cfg.Attach.DetachKey)
				} else {
					app.Logger.Debug("session started", "session", ev.SessionID, "wing", wingID)
				}
				close(started)
			}
		case "reattached":
			if !startedOnce {
				startedOnce = true
				close(started)
			}
			app.Logger.Debug("reattached", "session", ev.SessionID)
		case "offline":
			app.Logger.Debug("wing offline; reattaching", "session", ev.SessionID)
		case "reconnecting":
			app.Logger.Debug("relay connection lost; reattaching", "session", ev.SessionID, "err", ev.Err)
		}
	}

	detached := make(chan struct{})
	go func() {
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
		if isTTY {
			winch := make(chan os.Signal, 1)
			signal.Notify(winch, syscall.SIGWINCH)
			go func() {
				defer signal.Stop(winch)
				for {
					select {
					case <-ctx.Done():
						return
					case <-winch:
						if w, h, err := term.GetSize(stdin); err == nil {
							sess.Resize(ctx, w, h)
						}
					}
				}
			}()
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := os.Stdin.Read(buf)
			if n > 0 {
				p := buf[:n]
				if o.spectate {
					// Read-only: only the detach key (or ctrl-C) matters.
					if indexByte(p, detachKey) >= 0 || indexByte(p, 0x03) >= 0 {
						close(detached)
						sess.Detach(ctx)
						return
					}
					continue
				}
				if isTTY && detachKey != 0 {
					if i := indexByte(p, detachKey); i >= 0 {
						if i > 0 {
							sess.Input(ctx, p[:i])
						}
						close(detached)
						sess.Detach(ctx)
						return
					}
				}
				// Keys typed while the session reattaches are dropped.
				sess.Input(ctx, p)
			}
			if err != nil {
				if !isTTY && !o.spectate {
					sess.Input(ctx, []byte{0x04}) // EOF for the remote program
				}
				return
			}
		}
	}()

	code, err := sess.Run(ctx, app.Stdout, onEvent, cfg.Attach.Reconnect)
	select {
	case <-detached:
		if restore != nil {
			restore()
		}
		status("[wing: detached from session %s; reattach with: wing attach --session %s %s]", sess.ID(), sess.ID(), wingID)
		return nil
	default:
	}
	if restore != nil {
		restore()
	}
	if errors.Is(err, wingclient.ErrDetached) {
		return nil
	}
	var re *wingclient.RemoteError
	if errors.As(err, &re) {
		msg := re.Msg
		if strings.HasPrefix(msg, "unsupported agent") || strings.HasPrefix(msg, "unknown agent") {
			msg += fmt.Sprintf(" (wing info %s lists the agents it offers; pick one with --agent NAME)", wingID)
		}
		return &cli.ExitError{Code: max(re.Code, 1), Err: fmt.Errorf("wing %s: %s", wingID, msg)}
	}
	if err != nil {
		return userErr(err)
	}
	if code != 0 {
		return &cli.ExitError{Code: code}
	}
	return nil
}

// needShell refuses a shell or --command session on a wing whose
// registration lists agents but no shell (a wingthing wing offers only AI
// agents): it would only answer "unsupported agent". A wing that lists
// nothing, or is not in the list, is left to answer for itself.
func needShell(wings []wp.WingInfo, wingID string, command bool) error {
	for _, w := range wings {
		if w.WingID != wingID || len(w.Agents) == 0 || slices.Contains(w.Agents, "shell") {
			continue
		}
		what := "shell"
		if command {
			what = "shell to run --command with"
		}
		return cli.Usagef("wing %s offers no %s, only the agents %s; start one with --agent NAME (e.g. wing attach --agent %s %s)",
			wingID, what, strings.Join(w.Agents, ", "), w.Agents[0], wingID)
	}
	return nil
}

func indexByte(p []byte, b byte) int {
	for i, c := range p {
		if c == b {
			return i
		}
	}
	return -1
}
