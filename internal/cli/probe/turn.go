package probe

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/turn/turnprovider"
)

// ResolveConfig is the `resolve:` section: one TURN provider resolution.
type ResolveConfig struct {
	Provider  string `yaml:"provider" flag:"provider" usage:"TURN credential provider: generic-turn, turn-rest or vk (see 'probe providers')"`
	Link      string `yaml:"link" flag:"link" usage:"provider link, e.g. generic-turn://USER:PASS@HOST:PORT, turn-rest://USER@HOST:PORT?ttl=1h or https://vk.com/call/join/TOKEN (a generic-turn password on the command line is visible in ps: prefer WARREN_PROBE_RESOLVE_LINK)"`
	OutputDir string `yaml:"output_dir" flag:"output-dir" usage:"directory for the sanitized artifact DIR/<provider>/probe-artifact.json"`
	// Interactive lets a person answer a provider's challenge (VK's
	// captcha) on the terminal: the URL goes to stderr, the answer is
	// read from stdin.
	Interactive bool `yaml:"interactive" flag:"interactive" usage:"when the provider asks for a person (VK captcha), print the challenge URL on stderr and read the answer from stdin"`
}

// Exit codes of probe resolve (Nagios): 0 resolved; 2 CRITICAL, the link
// does not resolve (bad link, the provider's answer is an error or lacks
// a field); 3 UNKNOWN, probe could not judge: unknown provider, missing
// turn-rest secret or options, the provider unreachable, a challenge
// nobody answered, artifact not written.

func providersCmd(app *cli.App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "providers",
		Short: "List the TURN credential providers (sorted)",
		Args:  cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(*cobra.Command, []string) error { return printProviders(app, out) }
	return cmd
}

func printProviders(app *cli.App, out *cli.Output) error {
	if out.JSON() {
		return cli.WriteJSON(app.Stdout, turnprovider.Names())
	}
	for _, n := range turnprovider.Names() {
		if _, err := fmt.Fprintln(app.Stdout, n); err != nil {
			return err
		}
	}
	return nil
}

func resolveCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resolve",
		Short: "Resolve TURN credentials with a provider and write a sanitized artifact (no TURN, no DTLS)",
		Long: `resolve resolves --link with --provider, the way tunnel-client turn does,
writes the sanitized record of it to <output-dir>/<provider>/probe-artifact.json
(username and password replaced by placeholders) and prints
  provider=<p> turn_addr=<host:port> ttl=<duration> stages=<n> artifact=<path>
On failure it prints artifact_path=<path> (when an artifact was written) and
"probe failed: <error>" on stderr.

The turn-rest shared secret comes from WARREN_PROBE_TURN_REST_SECRET,
turn_rest_secret in the config file or --turn-rest-secret-file, never from a
flag value.

A provider that resolves in stages (vk) names the failing stage and a code:
  probe failed: vk stage ok_join_conversation_by_link [missing_turn_url]: ...
When VK asks for a captcha, --interactive prints the challenge URL on stderr
("challenge: open <url> in a browser") and reads the answer from stdin;
without it the run fails with code captcha_required.

Exit codes: 0 resolved; 2 CRITICAL (the link does not resolve, or the
provider answered with an error or without a required field); 3 UNKNOWN
(unknown provider; missing secret or options; the provider could not be
reached; a captcha that needed a person and got none; the artifact could
not be written).`,
		Args: cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	list := cmd.Flags().Bool("list-providers", false, "print the provider names and exit")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if *list {
			return printProviders(app, out)
		}
		return resolve(cmd.Context(), app, cfg, out)
	}
	return cmd
}

func resolve(ctx context.Context, app *cli.App, cfg *Config, out *cli.Output) error {
	r := cfg.Resolve
	for _, req := range []struct{ key, val, env string }{
		{"resolve.provider", r.Provider, "PROVIDER"}, {"resolve.link", r.Link, "LINK"},
	} {
		if req.val == "" {
			return &cli.ConfigError{Key: req.key, Err: fmt.Errorf("not set: give --%s or WARREN_PROBE_RESOLVE_%s", strings.TrimPrefix(req.key, "resolve."), req.env)}
		}
	}
	fail := func(code int, err error) error {
		fmt.Fprintf(app.Stderr, "probe failed: %v\n", err)
		return cli.Exit(code)
	}
	req := turnprovider.Request{Link: r.Link, RESTSecret: cfg.TURNRestSecret}
	if r.Interactive {
		req.Solver = &turnprovider.PromptSolver{In: app.Stdin, Out: app.Stderr}
	}
	res, err := turnprovider.Resolve(ctx, r.Provider, req)
	if err != nil {
		code, shown := cli.NagiosCritical, err
		var se *turnprovider.StageError
		switch {
		case errors.Is(err, turnprovider.ErrNotImplemented), errors.Is(err, turnprovider.ErrNotRegistered),
			errors.Is(err, turnprovider.ErrChallengeRequired), errors.Is(err, turnprovider.ErrChallengeCanceled):
			code = cli.NagiosUnknown
		case errors.As(err, &se) && se.Code == turnprovider.CodeRequestFailed:
			// Nothing answered: probe cannot say whether the link is good.
			code = cli.NagiosUnknown
		case errors.Is(err, turnprovider.ErrMissingSecret):
			code = cli.NagiosUnknown
			shown = errors.New("turn-rest needs the shared secret: set WARREN_PROBE_TURN_REST_SECRET, turn_rest_secret in the config file or --turn-rest-secret-file")
		}
		var re *turnprovider.ResolveError
		if errors.As(err, &re) && re.Artifact != nil {
			path, werr := probe.WriteProviderArtifact(r.OutputDir, re.Artifact)
			if werr != nil {
				return fail(cli.NagiosUnknown, errors.Join(shown, werr))
			}
			fmt.Fprintf(app.Stderr, "artifact_path=%s\n", path)
		}
		return fail(code, shown)
	}
	path, err := probe.WriteProviderArtifact(r.OutputDir, res.Artifact)
	if err != nil {
		return fail(cli.NagiosUnknown, err)
	}
	stages := len(res.Artifact.Stages)
	if out.JSON() {
		return cli.WriteJSON(app.Stdout, map[string]any{
			"provider": res.Provider, "turn_addr": res.Address, "ttl": res.TTL.String(),
			"ttl_seconds": res.TTL.Seconds(), "stages": stages, "artifact": path,
		})
	}
	_, err = fmt.Fprintf(app.Stdout, "provider=%s turn_addr=%s ttl=%s stages=%d artifact=%s\n",
		res.Provider, res.Address, res.TTL, stages, path)
	return err
}
