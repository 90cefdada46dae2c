package wing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingagent"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// openCmd is `wing open URL`, run inside a session: the session's user is
// asked to open URL (wing attach prompts, the browser terminal offers a
// button). Sessions get $BROWSER pointing at it.
func openCmd(app *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:   "open URL",
		Short: "Inside a wing session: ask the session's user to open URL in their browser",
		Long: `open asks the user attached to this session to open URL (http or https)
on their own machine: wing attach shows it and opens it only if the user
answers y; the browser terminal offers a button. It works inside sessions
of wing serve, which sets WARREN_SESSION_SOCKET, WARREN_SESSION_TOKEN and
WARREN_SESSION, and points $BROWSER at this command.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := wp.CheckURL(args[0]); err != nil {
				return cli.Usagef("%v", err)
			}
			return sendHook(cmd.Context(), wingagent.HookRequest{Op: "open", URL: args[0]})
		},
	}
}

// previewCmd is `wing preview`, run inside a session: what the session's
// user sees beside the terminal.
func previewCmd(app *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "preview (--url URL | --markdown FILE | --clear)",
		Short: "Inside a wing session: show a URL or a markdown file beside the terminal",
		Long: `preview sets what the users of this session see beside the terminal: a
URL (--url), markdown (--markdown FILE, - for standard input, at most 256 KiB),
or nothing (--clear). The browser terminal shows it, wing attach prints a
line, and wing sessions lists it.`,
		Args: cobra.NoArgs,
	}
	u := cmd.Flags().String("url", "", "show this http(s) URL")
	md := cmd.Flags().String("markdown", "", "show this markdown file (- reads standard input)")
	clear := cmd.Flags().Bool("clear", false, "clear the preview")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		n := 0
		for _, set := range []bool{*u != "", *md != "", *clear} {
			if set {
				n++
			}
		}
		if n != 1 {
			return cli.Usagef("give exactly one of --url, --markdown, --clear")
		}
		var p wp.Preview
		switch {
		case *u != "":
			p = wp.Preview{Mode: "url", URL: *u}
		case *md != "":
			var r io.Reader = app.Stdin
			if *md != "-" {
				f, err := os.Open(*md)
				if err != nil {
					return cli.Usagef("--markdown: %v", err)
				}
				defer f.Close()
				r = f
			}
			b, err := io.ReadAll(io.LimitReader(r, wp.MaxPreviewContent+1))
			if err != nil {
				return fmt.Errorf("--markdown: %w", err)
			}
			p = wp.Preview{Mode: "markdown", Content: string(b)}
		}
		if err := p.Check(); err != nil {
			return cli.Usagef("%v", err)
		}
		return sendHook(cmd.Context(), wingagent.HookRequest{Op: "preview", Preview: &p})
	}
	return cmd
}

func sendHook(ctx context.Context, r wingagent.HookRequest) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := wingagent.SendHook(ctx, os.Getenv, r)
	if err != nil && os.Getenv(wingagent.EnvHookSocket) == "" {
		return cli.Usagef("%v", err)
	}
	if err != nil {
		return errors.New("wing: " + err.Error())
	}
	return nil
}
