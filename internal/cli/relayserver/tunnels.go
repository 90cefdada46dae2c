package relayserver

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

func newTunnelID() string {
	b := make([]byte, 10)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, cli.Usagef("port must be a number from 1 to 65535, got %q", s)
	}
	return uint16(n), nil
}

func tunnelsCmd(app *cli.App, cfg *Config) *cobra.Command {
	var flags clientFlags
	cmd := &cobra.Command{
		Use:   "tunnels",
		Short: "Manage port tunnels on a running relay-server (Dev Tunnels management API)",
		Args:  cobra.NoArgs,
	}
	flags.register(cmd)
	client := func() (*apiClient, error) { return flags.client(cfg) }
	out := func(c *cobra.Command) *cli.Output { return cli.AddOutputFlag(c) }

	var desc string
	var labels []string
	create := &cobra.Command{Use: "create [ID]", Short: "Create a tunnel (ID generated when omitted)", Args: cobra.MaximumNArgs(1)}
	create.Flags().StringVar(&desc, "description", "", "what the tunnel is for")
	create.Flags().StringSliceVar(&labels, "label", nil, "label (repeatable)")
	createOut := out(create)
	create.RunE = func(cmd *cobra.Command, args []string) error {
		id := newTunnelID()
		if len(args) == 1 {
			id = args[0]
		}
		body := tunnelproto.Tunnel{TunnelID: id, Name: id, Description: desc, Labels: labels}
		t, err := apiCall(cmd.Context(), client, "create tunnel", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.Tunnel, error) {
			return api.PutTunnel(ctx, &body, apiclient.CreateOnly)
		})
		if err != nil {
			return err
		}
		return printTunnel(app, createOut, t)
	}

	list := &cobra.Command{Use: "list", Short: "List tunnels", Args: cobra.NoArgs}
	listOut := out(list)
	list.RunE = func(cmd *cobra.Command, _ []string) error {
		res, err := apiCall(cmd.Context(), client, "list tunnels", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.TunnelListByRegionResponse, error) {
			return api.ListTunnels(ctx)
		})
		if err != nil {
			return err
		}
		if listOut.JSON() {
			return cli.WriteJSON(app.Stdout, res)
		}
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tHOST\tDESCRIPTION")
		for _, region := range res.Value {
			for _, t := range region.Value {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", t.TunnelID, hostState(&t), t.Description)
			}
		}
		return tw.Flush()
	}

	show := &cobra.Command{Use: "show ID", Short: "Show a tunnel with its ports and host endpoint", Args: cobra.ExactArgs(1)}
	showOut := out(show)
	show.RunE = func(cmd *cobra.Command, args []string) error {
		t, err := apiCall(cmd.Context(), client, "show tunnel", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.Tunnel, error) {
			return api.GetTunnel(ctx, args[0], apiclient.GetOptions{IncludePorts: true})
		})
		if err != nil {
			return err
		}
		return printTunnel(app, showOut, t)
	}

	del := &cobra.Command{Use: "delete ID", Short: "Delete a tunnel with its ports", Args: cobra.ExactArgs(1)}
	del.RunE = func(cmd *cobra.Command, args []string) error {
		if _, err := apiCall(cmd.Context(), client, "delete tunnel", func(ctx context.Context, api *apiclient.Client) (struct{}, error) {
			return struct{}{}, api.DeleteTunnel(ctx, args[0])
		}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(app.Stdout, "deleted tunnel %s\n", args[0])
		return err
	}

	var scopes []string
	tok := &cobra.Command{
		Use:   "token ID --scope host|connect|manage|manage:ports",
		Short: "Issue tunnel access tokens (for tunnel-host and tunnel-client)",
		Args:  cobra.ExactArgs(1),
	}
	tok.Flags().StringSliceVar(&scopes, "scope", nil, "scope of the token (repeatable; required)")
	tok.MarkFlagRequired("scope")
	tokOut := out(tok)
	tok.RunE = func(cmd *cobra.Command, args []string) error {
		t, err := apiCall(cmd.Context(), client, "issue token", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.Tunnel, error) {
			return api.GetTunnel(ctx, args[0], apiclient.GetOptions{TokenScopes: scopes})
		})
		if err != nil {
			return err
		}
		if tokOut.JSON() {
			return cli.WriteJSON(app.Stdout, map[string]any{"tunnelId": t.TunnelID, "accessTokens": t.AccessTokens})
		}
		if len(scopes) == 1 {
			_, err = fmt.Fprintln(app.Stdout, apiclient.AccessToken(t, scopes[0]))
			return err
		}
		for _, s := range scopes {
			fmt.Fprintf(app.Stdout, "%s %s\n", s, apiclient.AccessToken(t, s))
		}
		return nil
	}

	cmd.AddCommand(create, list, show, del, tok, portsCmd(app, client))
	return cmd
}

func portsCmd(app *cli.App, client func() (*apiClient, error)) *cobra.Command {
	cmd := &cobra.Command{Use: "ports", Short: "Add, remove and list the ports of a tunnel", Args: cobra.NoArgs}

	var protocol, name string
	var anonymous bool
	add := &cobra.Command{Use: "add TUNNEL PORT", Short: "Add a port to a tunnel", Args: cobra.ExactArgs(2)}
	add.Flags().StringVar(&protocol, "protocol", "auto", "auto, http, https, ssh, ...")
	add.Flags().StringVar(&name, "name", "", "port name")
	add.Flags().BoolVar(&anonymous, "anonymous", false, "let anyone reach the port through web forwarding, without a token")
	addOut := cli.AddOutputFlag(add)
	add.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := parsePort(args[1])
		if err != nil {
			return err
		}
		body := tunnelproto.TunnelPort{PortNumber: n, Protocol: protocol, Name: name}
		if anonymous {
			body.AccessControl = tunnelproto.AnonymousConnectDocument()
		}
		p, err := apiCall(cmd.Context(), client, "add port", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.TunnelPort, error) {
			return api.PutPort(ctx, args[0], &body, apiclient.CreateOnly)
		})
		if err != nil {
			return err
		}
		if addOut.JSON() {
			return cli.WriteJSON(app.Stdout, p)
		}
		_, err = fmt.Fprintf(app.Stdout, "added port %d to tunnel %s\n", p.PortNumber, args[0])
		return err
	}

	remove := &cobra.Command{Use: "remove TUNNEL PORT", Short: "Remove a port from a tunnel", Args: cobra.ExactArgs(2)}
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := parsePort(args[1])
		if err != nil {
			return err
		}
		if _, err := apiCall(cmd.Context(), client, "remove port", func(ctx context.Context, api *apiclient.Client) (struct{}, error) {
			return struct{}{}, api.DeletePort(ctx, args[0], n)
		}); err != nil {
			return err
		}
		_, err = fmt.Fprintf(app.Stdout, "removed port %s from tunnel %s\n", args[1], args[0])
		return err
	}

	var anon bool
	access := &cobra.Command{
		Use:   "access TUNNEL PORT --anonymous=true|false",
		Short: "Let anyone reach a port through web forwarding, or require a connect token again",
		Args:  cobra.ExactArgs(2),
	}
	access.Flags().BoolVar(&anon, "anonymous", false, "true: no token needed; false: a connect token is needed")
	_ = access.MarkFlagRequired("anonymous")
	access.RunE = func(cmd *cobra.Command, args []string) error {
		n, err := parsePort(args[1])
		if err != nil {
			return err
		}
		doc := json.RawMessage(`{"entries":[]}`)
		if anon {
			doc = tunnelproto.AnonymousConnectDocument()
		}
		body := tunnelproto.TunnelPort{PortNumber: n, AccessControl: doc}
		if _, err := apiCall(cmd.Context(), client, "set port access", func(ctx context.Context, api *apiclient.Client) (struct{}, error) {
			_, err := api.PutPort(ctx, args[0], &body, apiclient.UpdateOnly)
			return struct{}{}, err
		}); err != nil {
			return err
		}
		state := "needs a connect token"
		if anon {
			state = "is open to anyone"
		}
		_, err = fmt.Fprintf(app.Stdout, "port %d of tunnel %s %s\n", n, args[0], state)
		return err
	}

	list := &cobra.Command{Use: "list TUNNEL", Short: "List the ports of a tunnel", Args: cobra.ExactArgs(1)}
	listOut := cli.AddOutputFlag(list)
	list.RunE = func(cmd *cobra.Command, args []string) error {
		res, err := apiCall(cmd.Context(), client, "list ports", func(ctx context.Context, api *apiclient.Client) (*tunnelproto.TunnelPortList, error) {
			return api.ListPorts(ctx, args[0])
		})
		if err != nil {
			return err
		}
		if listOut.JSON() {
			return cli.WriteJSON(app.Stdout, res)
		}
		tw := tabwriter.NewWriter(app.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PORT\tPROTOCOL\tNAME\tACCESS\tURIS")
		for _, p := range res.Value {
			acc := "token"
			if _, ok := tunnelproto.AnonymousAccess(p.AccessControl, tunnelproto.ScopeConnect); ok {
				acc = "anonymous"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.PortNumber, p.Protocol, p.Name, acc, strings.Join(p.PortForwardingURIs, " "))
		}
		return tw.Flush()
	}
	cmd.AddCommand(add, remove, access, list)
	return cmd
}

func hostState(t *tunnelproto.Tunnel) string {
	if len(t.Endpoints) > 0 {
		return "connected"
	}
	return "none"
}

func printTunnel(app *cli.App, o *cli.Output, t *tunnelproto.Tunnel) error {
	if o.JSON() {
		return cli.WriteJSON(app.Stdout, t)
	}
	w := app.Stdout
	fmt.Fprintf(w, "tunnel:      %s\n", t.TunnelID)
	if t.Description != "" {
		fmt.Fprintf(w, "description: %s\n", t.Description)
	}
	if len(t.Labels) > 0 {
		fmt.Fprintf(w, "labels:      %s\n", strings.Join(t.Labels, ", "))
	}
	fmt.Fprintf(w, "host:        %s\n", hostState(t))
	for _, e := range t.Endpoints {
		fmt.Fprintf(w, "  client relay: %s\n", e.ClientRelayURI)
	}
	ports := make([]string, 0, len(t.Ports))
	for _, p := range t.Ports {
		ports = append(ports, strconv.Itoa(int(p.PortNumber)))
	}
	sort.Strings(ports)
	if len(ports) > 0 {
		fmt.Fprintf(w, "ports:       %s\n", strings.Join(ports, ", "))
	}
	return nil
}
