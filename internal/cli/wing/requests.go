package wing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingclient"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// tunnelDo opens an encrypted request tunnel to wingID ("" for the only
// wing) and runs fn on it.
func tunnelDo(ctx context.Context, cfg *Config, wingID string, fn func(ctx context.Context, tn *wingclient.Tunnel) error) error {
	if err := needUserToken(cfg); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	tn, err := c.OpenTunnel(ctx, wingID)
	if err != nil {
		return requestErr(wingID, err)
	}
	defer tn.Close()
	return requestErr(tn.WingID(), fn(ctx, tn))
}

// requestErr maps the wing's refusals to messages that say what to do.
func requestErr(wingID string, err error) error {
	var re *wingclient.RemoteError
	if !errors.As(err, &re) {
		return userErr(err)
	}
	switch re.Msg {
	case "not_allowed":
		return fmt.Errorf("wing %s is locked and you are not on its allow list (its owner adds you with: wing allow add YOU)", wingID)
	case "passkey_required":
		return fmt.Errorf("wing %s requires a passkey for you; use the browser terminal (/app/) to pass the check", wingID)
	}
	if re.Code == 2 {
		return cli.Usagef("%s", re.Msg)
	}
	if wingID != "" {
		return fmt.Errorf("wing %s: %s", wingID, re.Msg)
	}
	return errors.New(re.Msg)
}

func optionalWing(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return ""
}

func infoCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "info [WING]",
		Short: "Show a wing's host, version, agents and lock state (an encrypted request)",
		Args:  cobra.MaximumNArgs(1),
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return tunnelDo(cmd.Context(), cfg, optionalWing(args), func(ctx context.Context, tn *wingclient.Tunnel) error {
			var raw json.RawMessage
			if err := tn.Request(ctx, map[string]any{"type": "wing.info"}, &raw); err != nil {
				return err
			}
			if out.JSON() {
				return cli.WriteJSON(app.Stdout, raw)
			}
			var info struct {
				Hostname     string   `json:"hostname"`
				Platform     string   `json:"platform"`
				Version      string   `json:"version"`
				Agents       []string `json:"agents"`
				Locked       bool     `json:"locked"`
				Spectate     bool     `json:"spectate"`
				AllowedCount int      `json:"allowed_count"`
			}
			json.Unmarshal(raw, &info)
			// What the wing reports: warren's wing lists "shell" itself, a
			// wingthing wing offers only its agents.
			agents := strings.Join(info.Agents, ", ")
			if agents == "" {
				agents = "(none reported)"
			}
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "wing\t%s\nhostname\t%s\nplatform\t%s\nversion\t%s\nagents\t%s\nlocked\t%v\nallowed users\t%d\nspectate\t%v\n",
				tn.WingID(), info.Hostname, info.Platform, info.Version, agents,
				info.Locked, info.AllowedCount, info.Spectate)
			return tw.Flush()
		})
	}
	return cmd
}

type sessionRow struct {
	SessionID      string      `json:"session_id"`
	Agent          string      `json:"agent"`
	Cwd            string      `json:"cwd"`
	UserID         string      `json:"user_id"`
	NeedsAttention bool        `json:"needs_attention"`
	StartedAt      string      `json:"started_at"`
	EndedAt        string      `json:"ended_at"`
	ExitCode       *int        `json:"exit_code"`
	Preview        *wp.Preview `json:"preview"`
}

// previewText is a session's preview in one short cell.
func previewText(p *wp.Preview) string {
	switch {
	case p == nil:
		return "-"
	case p.Mode == "url":
		return p.URL
	default:
		first, _, _ := strings.Cut(strings.TrimSpace(p.Content), "\n")
		if len(first) > 40 {
			first = first[:40] + "…"
		}
		return "markdown: " + first
	}
}

func sessionsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sessions [WING]",
		Short: "List a wing's running sessions, or with --history the ended ones",
		Args:  cobra.MaximumNArgs(1),
	}
	out := cli.AddOutputFlag(cmd)
	history := cmd.Flags().Bool("history", false, "list ended sessions, newest first")
	offset := cmd.Flags().Int("offset", 0, "with --history: skip this many")
	limit := cmd.Flags().Int("limit", 50, "with --history: list at most this many (1-200)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *limit < 1 || *limit > 200 || *offset < 0 {
			return cli.Usagef("--limit must be 1-200 and --offset not negative")
		}
		req := map[string]any{"type": "sessions.list"}
		if *history {
			req = map[string]any{"type": "sessions.history", "offset": *offset, "limit": *limit}
		}
		return tunnelDo(cmd.Context(), cfg, optionalWing(args), func(ctx context.Context, tn *wingclient.Tunnel) error {
			var raw json.RawMessage
			if err := tn.Request(ctx, req, &raw); err != nil {
				return err
			}
			if out.JSON() {
				return cli.WriteJSON(app.Stdout, raw)
			}
			var res struct {
				Sessions []sessionRow `json:"sessions"`
				Total    *int         `json:"total"`
			}
			json.Unmarshal(raw, &res)
			tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
			if *history {
				fmt.Fprintln(tw, "SESSION\tAGENT\tUSER\tSTARTED\tENDED\tEXIT")
			} else {
				fmt.Fprintln(tw, "SESSION\tAGENT\tUSER\tSTARTED\tATTENTION\tCWD\tPREVIEW")
			}
			for _, s := range res.Sessions {
				if *history {
					code := ""
					if s.ExitCode != nil {
						code = fmt.Sprint(*s.ExitCode)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.SessionID, s.Agent, s.UserID, s.StartedAt, s.EndedAt, code)
				} else {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", s.SessionID, s.Agent, s.UserID, s.StartedAt, s.NeedsAttention, s.Cwd, previewText(s.Preview))
				}
			}
			return tw.Flush()
		})
	}
	return cmd
}

func lsDirCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ls-dir [PATH]",
		Short: "List the directories under PATH on a wing (home when omitted; a partial last name filters)",
		Args:  cobra.MaximumNArgs(1),
	}
	out := cli.AddOutputFlag(cmd)
	wingID := cmd.Flags().String("wing", "", "wing to ask; empty: your only wing")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		path := ""
		if len(args) == 1 {
			path = args[0]
		}
		return tunnelDo(cmd.Context(), cfg, *wingID, func(ctx context.Context, tn *wingclient.Tunnel) error {
			var raw json.RawMessage
			if err := tn.Request(ctx, map[string]any{"type": "dir.list", "path": path}, &raw); err != nil {
				return err
			}
			if out.JSON() {
				return cli.WriteJSON(app.Stdout, raw)
			}
			var res struct {
				Entries []struct {
					Path string `json:"path"`
				} `json:"entries"`
			}
			json.Unmarshal(raw, &res)
			for _, e := range res.Entries {
				fmt.Fprintln(app.Stdout, e.Path+"/")
			}
			return nil
		})
	}
	return cmd
}

func killCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kill SESSION",
		Short: "End a session on a wing",
		Args:  cobra.ExactArgs(1),
	}
	wingID := cmd.Flags().String("wing", "", "wing the session runs on; empty: your only wing")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return tunnelDo(cmd.Context(), cfg, *wingID, func(ctx context.Context, tn *wingclient.Tunnel) error {
			if err := tn.Request(ctx, map[string]any{"type": "pty.kill", "session_id": args[0]}, nil); err != nil {
				return err
			}
			app.Logger.Info("session killed", "session", args[0], "wing", tn.WingID())
			return nil
		})
	}
	return cmd
}

func allowCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "allow",
		Short: "Show or change a wing's allow list (owner only; kept by the wing across restarts)",
		Long: `allow lists the users a locked wing serves, or adds or removes one at run
time through an encrypted request. The wing keeps these changes in its state
dir (serve.state_dir), on top of serve.allow: they survive restarts and
reloads (SIGHUP). Passkeys are only given in the wing's config file.`,
	}
	var wingID string
	cmd.PersistentFlags().StringVar(&wingID, "wing", "", "wing to ask; empty: your only wing")
	ls := &cobra.Command{Use: "ls", Short: "List the allow list", Args: cobra.NoArgs}
	out := cli.AddOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, _ []string) error {
		return tunnelDo(cmd.Context(), cfg, wingID, func(ctx context.Context, tn *wingclient.Tunnel) error {
			var raw json.RawMessage
			if err := tn.Request(ctx, map[string]any{"type": "allow.list"}, &raw); err != nil {
				return err
			}
			if out.JSON() {
				return cli.WriteJSON(app.Stdout, raw)
			}
			var res struct {
				Locked  bool `json:"locked"`
				Allowed []struct {
					User     string `json:"user"`
					Passkeys int    `json:"passkeys"`
				} `json:"allowed"`
			}
			json.Unmarshal(raw, &res)
			fmt.Fprintf(app.Stdout, "locked: %v\n", res.Locked)
			for _, u := range res.Allowed {
				fmt.Fprintf(app.Stdout, "%s\tpasskeys=%d\n", u.User, u.Passkeys)
			}
			return nil
		})
	}
	change := func(use, typ, short string) *cobra.Command {
		c := &cobra.Command{Use: use + " USER", Short: short, Args: cobra.ExactArgs(1)}
		c.RunE = func(cmd *cobra.Command, args []string) error {
			return tunnelDo(cmd.Context(), cfg, wingID, func(ctx context.Context, tn *wingclient.Tunnel) error {
				var res struct {
					Changed      bool `json:"changed"`
					AllowedCount int  `json:"allowed_count"`
				}
				if err := tn.Request(ctx, map[string]any{"type": typ, "user": args[0]}, &res); err != nil {
					return err
				}
				state := map[bool]string{true: "done", false: "no change"}[res.Changed]
				fmt.Fprintf(app.Stdout, "%s %s: %s (%d allowed)\n", use, args[0], state, res.AllowedCount)
				return nil
			})
		}
		return c
	}
	cmd.AddCommand(ls, change("add", "allow.add", "Allow a user (relay user id or email)"), change("rm", "allow.remove", "Remove a user"))
	return cmd
}
