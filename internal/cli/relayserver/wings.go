package relayserver

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

type wingTokenOptions struct {
	clientFlags
	kind   string
	user   string
	wing   string
	ttl    time.Duration
	output *cli.Output
}

type wingTokenResult struct {
	Token     string `json:"token"`
	Kind      string `json:"kind"`
	User      string `json:"user"`
	Wing      string `json:"wing,omitempty"`
	ExpiresAt string `json:"expires_at"`
}

func wingsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wings",
		Short: "Manage wing access on a running relay-server",
		Args:  cobra.NoArgs,
	}
	o := &wingTokenOptions{}
	tok := &cobra.Command{
		Use:   "token --kind wing|user --user USER [--wing WING_ID]",
		Short: "Mint a wing token (for wing serve) or a user token (for wing ls/attach)",
		Long: `Mint a token through the relay's API (authenticated by the admin key from
admin_key, admin_key_file or WARREN_RELAY_SERVER_ADMIN_KEY). A wing token lets
'wing serve' register; its wings belong to --user. A user token lets that user
list and attach to their wings. Prints the token alone (or JSON with -o json).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWingToken(cmd.Context(), app, cfg, o)
		},
	}
	o.register(tok)
	f := tok.Flags()
	f.StringVar(&o.kind, "kind", "", "wing or user (required)")
	f.StringVar(&o.user, "user", "", "user id: the owner of the wing, or the user (required)")
	f.StringVar(&o.wing, "wing", "", "wing tokens only: bind the token to this machine wing_id")
	f.DurationVar(&o.ttl, "ttl", 0, "token lifetime (default and maximum 8760h, 365 days)")
	tok.MarkFlagRequired("kind")
	tok.MarkFlagRequired("user")
	o.output = cli.AddOutputFlag(tok)
	cmd.AddCommand(tok)
	return cmd
}

func runWingToken(ctx context.Context, app *cli.App, cfg *Config, o *wingTokenOptions) error {
	if o.kind != "wing" && o.kind != "user" {
		return cli.Usagef("--kind must be wing or user, got %q", o.kind)
	}
	if o.kind == "user" && o.wing != "" {
		return cli.Usagef("--wing goes with --kind wing only")
	}
	if o.ttl < 0 || (o.ttl > 0 && o.ttl < time.Second) || o.ttl > 365*24*time.Hour {
		return cli.Usagef("--ttl must be between 1s and 8760h, got %s", o.ttl)
	}
	c, err := o.client(cfg)
	if err != nil {
		return err
	}
	req := map[string]any{"kind": o.kind, "user": o.user}
	if o.wing != "" {
		req["wing"] = o.wing
	}
	if o.ttl > 0 {
		req["ttl_seconds"] = int64(o.ttl / time.Second)
	}
	var res wingTokenResult
	if err := c.do(ctx, "mint wing token", "POST", "/api/v1/wings/tokens", req, &res); err != nil {
		return err
	}
	if res.Token == "" {
		return fmt.Errorf("mint wing token at %s: the answer has no token", c.base)
	}
	if o.output.JSON() {
		return cli.WriteJSON(app.Stdout, res)
	}
	_, err = fmt.Fprintln(app.Stdout, res.Token)
	return err
}
