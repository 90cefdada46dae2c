package relayserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
)

// apiClient is how admin subcommands talk to a running relay-server: over
// its HTTP API (through apiclient), never to the database behind its back.
// It adds the per-call --timeout and says what failures mean for an
// operator.
type apiClient struct {
	api     *apiclient.Client
	base    string
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
	base := serverURL(f.server, cfg)
	return &apiClient{api: apiclient.New(apiclient.Config{BaseURL: base, Key: cfg.AdminKey}), base: base, timeout: f.timeout}, nil
}

// apiError is a refusal by the relay, with its status.
type apiError struct {
	op     string
	base   string
	status int
	msg    string
	err    *apiclient.StatusError
}

func (e *apiError) Error() string {
	hint := ""
	switch e.status {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint = " (check the key in WARREN_RELAY_SERVER_ADMIN_KEY or admin_key_file)"
	}
	return fmt.Sprintf("%s at %s: %d %s%s", e.op, e.base, e.status, e.msg, hint)
}

func (e *apiError) Unwrap() error { return e.err }

// do sends a JSON request and decodes a JSON answer into out (may be nil).
func (c *apiClient) do(ctx context.Context, op, method, path string, in, out any) error {
	return c.call(ctx, op, func(ctx context.Context) error { return c.api.Do(ctx, op, method, path, in, out) })
}

// call runs one API call within --timeout and explains its failure.
func (c *apiClient) call(ctx context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	err := f(ctx)
	var se *apiclient.StatusError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, apiclient.ErrInvalidURL):
		return cli.Usagef("--server %q: %v", c.base, err)
	case errors.As(err, &se):
		msg := se.Message
		if msg == "" {
			msg = http.StatusText(se.Status)
		}
		return &apiError{op: op, base: c.base, status: se.Status, msg: msg, err: se}
	case errors.Is(err, apiclient.ErrBadResponse):
		return fmt.Errorf("%s at %s: unexpected answer: %w", op, c.base, err)
	}
	return fmt.Errorf("%s: cannot reach relay at %s (is relay-server running? see --server): %w", op, c.base, err)
}

// apiCall opens the client and runs one API call within --timeout,
// returning its result or an operator-readable failure (see call).
func apiCall[T any](ctx context.Context, client func() (*apiClient, error), op string, f func(context.Context, *apiclient.Client) (T, error)) (T, error) {
	var res T
	c, err := client()
	if err != nil {
		return res, err
	}
	err = c.call(ctx, op, func(ctx context.Context) (err error) {
		res, err = f(ctx, c.api)
		return err
	})
	return res, err
}
