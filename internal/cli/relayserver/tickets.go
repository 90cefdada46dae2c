package relayserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
)

type mintOptions struct {
	server    string
	workspace string
	source    string
	dest      string
	ttl       time.Duration
	maxBytes  cli.ByteSize
	timeout   time.Duration
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
	f := mint.Flags()
	f.StringVar(&opts.server, "server", "", "relay URL (default: public_url, else the listen address on loopback)")
	f.StringVar(&opts.workspace, "workspace", "", "workspace the ticket counts against (required)")
	f.StringVar(&opts.source, "source", "", "identity of the uploading side (required)")
	f.StringVar(&opts.dest, "dest", "", "identity of the downloading side (required)")
	f.DurationVar(&opts.ttl, "ttl", 0, "pairing deadline (default: the relay's tickets.default_ttl)")
	f.Var(&byteSizeFlag{&opts.maxBytes}, "max-bytes", "upload size limit such as 10MiB (default: the relay's tickets.max_bytes)")
	f.DurationVar(&opts.timeout, "timeout", 15*time.Second, "how long to wait for the relay")
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
	if cfg.AdminKey == "" {
		return &cli.ConfigError{Key: "admin_key", Err: errors.New("no admin key: set WARREN_RELAY_SERVER_ADMIN_KEY or admin_key_file")}
	}
	base := serverURL(o.server, cfg)
	req := map[string]any{"workspace_id": o.workspace, "source_id": o.source, "dest_id": o.dest}
	if o.ttl > 0 {
		req["ttl_seconds"] = int64(o.ttl / time.Second)
	}
	if o.maxBytes > 0 {
		req["max_bytes"] = int64(o.maxBytes)
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/tickets", bytes.NewReader(body))
	if err != nil {
		return cli.Usagef("--server %q: %v", base, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+cfg.AdminKey)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return fmt.Errorf("mint ticket: cannot reach relay at %s (is relay-server running? see --server): %w", base, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		var e struct {
			Error string `json:"error"`
		}
		json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			hint = " (check the admin key)"
		case http.StatusNotFound:
			hint = " (is the ticket relay enabled on this relay? tickets.enabled)"
		}
		return fmt.Errorf("mint ticket at %s: %d %s%s", base, resp.StatusCode, msg, hint)
	}
	var res mintResult
	if err := json.Unmarshal(data, &res); err != nil || res.Ticket == "" {
		return fmt.Errorf("mint ticket at %s: unexpected answer %q", base, truncate(data))
	}
	res.UploadURL = base + res.UploadURL
	res.DownloadURL = base + res.DownloadURL
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

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
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
