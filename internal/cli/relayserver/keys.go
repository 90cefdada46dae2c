package relayserver

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/relayserver"
)

func keysCmd(app *cli.App, cfg *Config) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage operator API keys and token signing keys of a running relay-server",
		Args:  cobra.NoArgs,
	}
	flags.register(cmd)

	var name string
	var scopes []string
	create := &cobra.Command{
		Use:   "create --name N --scope tickets|tunnels|wings ...",
		Short: "Create an API key; its secret is printed once",
		Args:  cobra.NoArgs,
	}
	create.Flags().StringVar(&name, "name", "", "what the key is for (required)")
	create.Flags().StringSliceVar(&scopes, "scope", nil, "scope the key grants: tickets, tunnels, wings (repeatable, required)")
	create.MarkFlagRequired("name")
	create.MarkFlagRequired("scope")
	createOut := cli.AddOutputFlag(create)
	create.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := flags.client(cfg)
		if err != nil {
			return err
		}
		var k relayserver.KeyInfo
		if err := c.do(cmd.Context(), "create key", "POST", "/api/v1/keys", map[string]any{"name": name, "scopes": scopes}, &k); err != nil {
			return err
		}
		if createOut.JSON() {
			return cli.WriteJSON(app.Stdout, k)
		}
		fmt.Fprintf(app.Stdout, "id:     %s\nscopes: %s\nkey:    %s\n", k.ID, strings.Join(k.Scopes, " "), k.Key)
		fmt.Fprintln(app.Stderr, "The key is shown only now; store it (e.g. in a file read through a *_file setting).")
		return nil
	}

	list := &cobra.Command{Use: "list", Short: "List API keys (never their secrets)", Args: cobra.NoArgs}
	listOut := cli.AddOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := flags.client(cfg)
		if err != nil {
			return err
		}
		var res struct {
			Keys []relayserver.KeyInfo `json:"keys"`
		}
		if err := c.do(cmd.Context(), "list keys", "GET", "/api/v1/keys", nil, &res); err != nil {
			return err
		}
		if listOut.JSON() {
			return cli.WriteJSON(app.Stdout, res)
		}
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tSTATE")
		for _, k := range res.Keys {
			state := "active"
			if k.RevokedAt != nil {
				state = "revoked " + k.RevokedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, strings.Join(k.Scopes, ","), k.Created.Format(time.RFC3339), state)
		}
		return tw.Flush()
	}

	revoke := &cobra.Command{Use: "revoke ID", Short: "Revoke an API key at once", Args: cobra.ExactArgs(1)}
	revokeOut := cli.AddOutputFlag(revoke)
	revoke.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := flags.client(cfg)
		if err != nil {
			return err
		}
		var k relayserver.KeyInfo
		if err := c.do(cmd.Context(), "revoke key", "DELETE", "/api/v1/keys/"+args[0], nil, &k); err != nil {
			return err
		}
		if revokeOut.JSON() {
			return cli.WriteJSON(app.Stdout, k)
		}
		_, err = fmt.Fprintf(app.Stdout, "revoked %s (%s)\n", k.ID, k.Name)
		return err
	}

	rotate := &cobra.Command{
		Use:   "rotate-signing",
		Short: "Make a new token signing key current; tokens signed by the old one stay valid until they expire",
		Args:  cobra.NoArgs,
	}
	rotateOut := cli.AddOutputFlag(rotate)
	rotate.RunE = func(cmd *cobra.Command, _ []string) error {
		c, err := flags.client(cfg)
		if err != nil {
			return err
		}
		var res map[string]any
		if err := c.do(cmd.Context(), "rotate signing key", "POST", "/api/v1/signing-keys/rotate", nil, &res); err != nil {
			return err
		}
		if rotateOut.JSON() {
			return cli.WriteJSON(app.Stdout, res)
		}
		_, err = fmt.Fprintf(app.Stdout, "current signing key: %v\n", res["current"])
		return err
	}
	cmd.AddCommand(create, list, revoke, rotate)
	return cmd
}
