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

// apiClient is how admin subcommands talk to a running relay-server: over
// its HTTP API, never to the database behind its back.
type apiClient struct {
	base    string
	key     string
	timeout time.Duration
}

// clientFlags are the flags every admin subcommand shares.
type clientFlags struct {
	server  string
	timeout time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.server, "server", "", "relay URL (default: public_url, else the listen address on loopback)")
	cmd.PersistentFlags().DurationVar(&f.timeout, "timeout", 15*time.Second, "how long to wait for the relay")
}

func (f *clientFlags) client(cfg *Config) (*apiClient, error) {
	if cfg.AdminKey == "" {
		return nil, &cli.ConfigError{Key: "admin_key", Err: errors.New("no admin key: set WARREN_RELAY_SERVER_ADMIN_KEY or admin_key_file")}
	}
	return &apiClient{base: serverURL(f.server, cfg), key: cfg.AdminKey, timeout: f.timeout}, nil
}

// apiError is a refusal by the relay, with its status.
type apiError struct {
	op     string
	base   string
	status int
	msg    string
}

func (e *apiError) Error() string {
	hint := ""
	switch e.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check the key in WARREN_RELAY_SERVER_ADMIN_KEY or admin_key_file)"
	}
	return fmt.Sprintf("%s at %s: %d %s%s", e.op, e.base, e.status, e.msg, hint)
}

// do sends a JSON request and decodes a JSON answer into out (may be nil).
// want is the success status.
func (c *apiClient) do(ctx context.Context, op, method, path string, in any, want int, out any, header ...string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return cli.Usagef("--server %q: %v", c.base, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: cannot reach relay at %s (is relay-server running? see --server): %w", op, c.base, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != want {
		var e struct {
			Error  string `json:"error"`
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		json.Unmarshal(data, &e)
		msg := e.Error
		if msg == "" {
			msg = e.Title
			if e.Detail != "" {
				msg += ": " + e.Detail
			}
		}
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return &apiError{op: op, base: c.base, status: resp.StatusCode, msg: msg}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s at %s: unexpected answer %q", op, c.base, truncate(data))
		}
	}
	return nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
