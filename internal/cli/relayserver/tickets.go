package relayserver

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

type mintOptions struct {
	clientFlags
	workspace string
	source    string
	dest      string
	ttl       time.Duration
	maxBytes  cli.ByteSize
	output    *cli.Output
}

// mintResult is what `tickets mint` prints: the server's answer with
// absolute URLs and ready-to-run curl lines.
type mintResult struct {
	Ticket          string `json:"ticket"`
	UploadURL       string `json:"upload_url"`
	DownloadURL     string `json:"download_url"`
	ExpiresAt       string `json:"expires_at"`
	UploadCommand   string `json:"upload_command"`
	DownloadCommand string `json:"download_command"`
}

func ticketsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tickets",
		Short: "Mint tickets on a running relay-server for the PUT→GET byte relay",
		Args:  cobra.NoArgs,
	}
	opts := &mintOptions{}
	mint := &cobra.Command{
		Use:   "mint --workspace W --source S --dest D",
		Short: "Mint a single-use ticket and print the curl lines that use it",
		Long: `Mint a ticket through the relay's API (authenticated by the admin key from
admin_key, admin_key_file or WARREN_RELAY_SERVER_ADMIN_KEY) and print the
ticket with the two curl command lines: one uploads, the other downloads.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMint(cmd.Context(), app, cfg, opts)
		},
	}
	opts.register(mint)
	f := mint.Flags()
	f.StringVar(&opts.workspace, "workspace", "", "workspace the ticket counts against (required)")
	f.StringVar(&opts.source, "source", "", "identity of the uploading side (required)")
	f.StringVar(&opts.dest, "dest", "", "identity of the downloading side (required)")
	f.DurationVar(&opts.ttl, "ttl", 0, "pairing deadline (default: the relay's tickets.default_ttl)")
	f.Var(&byteSizeFlag{&opts.maxBytes}, "max-bytes", "upload size limit such as 10MiB (default: the relay's tickets.max_bytes; at most its tickets.max_bytes_limit)")
	for _, name := range []string{"workspace", "source", "dest"} {
		mint.MarkFlagRequired(name)
	}
	opts.output = cli.AddOutputFlag(mint)
	cmd.AddCommand(mint)
	return cmd
}

func runMint(ctx context.Context, app *cli.App, cfg *Config, o *mintOptions) error {
	if o.ttl < 0 || (o.ttl > 0 && o.ttl < time.Second) {
		return cli.Usagef("--ttl must be at least 1s, got %s", o.ttl)
	}
	c, err := o.client(cfg)
	if err != nil {
		return err
	}
	req := map[string]any{"workspace_id": o.workspace, "source_id": o.source, "dest_id": o.dest}
	if o.ttl > 0 {
		req["ttl_seconds"] = int64(o.ttl / time.Second)
	}
	if o.maxBytes > 0 {
		req["max_bytes"] = int64(o.maxBytes)
	}
	var res mintResult
	if err := c.do(ctx, "mint ticket", "POST", "/v1/tickets", req, &res); err != nil {
		if ae, ok := err.(*apiError); ok && ae.status == 404 {
			ae.msg += " (is the ticket relay enabled on this relay? tickets.enabled)"
		}
		return err
	}
	if res.Ticket == "" {
		return fmt.Errorf("mint ticket at %s: the answer has no ticket", c.base)
	}
	res.UploadURL = c.base + res.UploadURL
	res.DownloadURL = c.base + res.DownloadURL
	auth := fmt.Sprintf("-H 'Authorization: Bearer %s'", res.Ticket)
	res.UploadCommand = fmt.Sprintf("curl -sS --fail-with-body -T FILE %s %s", auth, res.UploadURL)
	res.DownloadCommand = fmt.Sprintf("curl -sS --fail -o FILE %s %s", auth, res.DownloadURL)
	if o.output.JSON() {
		return cli.WriteJSON(app.Stdout, res)
	}
	_, err = fmt.Fprintf(app.Stdout, "ticket:   %s\nexpires:  %s\nupload:   %s\ndownload: %s\n",
		res.Ticket, res.ExpiresAt, res.UploadCommand, res.DownloadCommand)
	return err
}

// byteSizeFlag adapts cli.ByteSize to pflag.
type byteSizeFlag struct{ v *cli.ByteSize }

func (b *byteSizeFlag) Set(s string) error { return b.v.UnmarshalText([]byte(s)) }
func (b *byteSizeFlag) String() string {
	if b.v == nil || *b.v == 0 {
		return ""
	}
	return b.v.String()
}
func (b *byteSizeFlag) Type() string { return "size" }
