package tunnelclient

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/buildinfo"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/secret"
	"github.com/warrenhq/warren/internal/turn/overlay"
	"github.com/warrenhq/warren/internal/turn/turnclient"
	"github.com/warrenhq/warren/internal/turn/turncontrol"
)

// ControlConfig is the `control:` section: the local control API.
type ControlConfig struct {
	Listen    string `yaml:"listen" flag:"listen" usage:"address of the control API: loopback only (127.0.0.1, ::1 or localhost); the client subcommands connect to it"`
	StateDir  string `yaml:"state_dir" flag:"state-dir" usage:"directory for the profiles; empty means $XDG_STATE_HOME/warren/tunnel-client (~/.local/state/...)"`
	TokenFile string `yaml:"token_file" flag:"token-file" usage:"file holding the API's bearer token, created 0600 if absent; empty means <state_dir>/token"`
}

func defaultControlConfig() ControlConfig { return ControlConfig{Listen: "127.0.0.1:7777"} }

func (c *ControlConfig) validate() error {
	if err := turncontrol.CheckListen(c.Listen); err != nil {
		return cli.FieldErrorf("control.listen", "%w", err)
	}
	return nil
}

// stateDir is control.state_dir or its XDG default.
func (c *ControlConfig) stateDir() (string, error) {
	if c.StateDir != "" {
		return c.StateDir, nil
	}
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		return filepath.Join(x, "warren", "tunnel-client"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", &cli.ConfigError{Key: "control.state_dir", Err: fmt.Errorf("not set and no home directory: %w", err)}
	}
	return filepath.Join(home, ".local", "state", "warren", "tunnel-client"), nil
}

func (c *ControlConfig) tokenFile() (string, error) {
	if c.TokenFile != "" {
		return c.TokenFile, nil
	}
	dir, err := c.stateDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "token"), nil
}

// loadOrCreateToken reads the token file, or creates it (0600, in a 0700
// directory) with a fresh random token.
func loadOrCreateToken(path string) (string, error) {
	tok, err := secret.FromFile(os.ReadFile, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return secret.FromFile(os.ReadFile, path) // created by a concurrent start
	}
	if err != nil {
		return "", err
	}
	tok = rand.Text()
	if _, err := f.WriteString(tok + "\n"); err != nil {
		f.Close()
		return "", err
	}
	return tok, f.Close()
}

// prepareProfile checks a profile exactly as `tunnel-client turn` checks
// its `turn:` section (the same validate and checkTurn, so the same
// messages), reading the secrets it references.
func prepareProfile(p turncontrol.Profile) (turncontrol.Plan, error) {
	t := defaultTurnConfig()
	t.Provider, t.Peer, t.Link, t.Compat = p.Provider, p.Peer, p.Link, p.Compat
	for _, s := range []struct {
		dst *string
		val string
	}{{&t.Listen, p.Listen}, {&t.Ingress, p.Ingress}, {&t.Mode, p.Mode}, {&t.Server, p.Server},
		{&t.BindInterface, p.BindInterface}, {&t.PSKIdentity, p.PSKIdentity}} {
		if s.val != "" {
			*s.dst = s.val
		}
	}
	if p.Connections != 0 {
		t.Connections = p.Connections
	}
	t.Port = p.Port
	for _, f := range []struct {
		key, path string
		dst       *string
	}{{"turn.link_file", p.LinkFile, &t.Link}, {"turn.psk_file", p.PSKFile, &t.PSK}, {"turn.rest_secret_file", p.RESTSecretFile, &t.RESTSecret}} {
		if f.path == "" {
			continue
		}
		v, err := secret.FromFile(os.ReadFile, f.path)
		if err != nil {
			return turncontrol.Plan{}, &cli.ConfigError{Key: f.key, Err: err}
		}
		*f.dst = v
	}
	if err := t.validate(); err != nil {
		var fe *cli.FieldError
		if errors.As(err, &fe) {
			return turncontrol.Plan{}, &cli.ConfigError{Key: fe.Key, Err: fe.Err}
		}
		return turncontrol.Plan{}, err
	}
	identity, key, err := checkTurn(&t)
	if err != nil {
		return turncontrol.Plan{}, err
	}
	return turncontrol.Plan{Client: clientConfig(&t, identity, key), Listen: t.Listen}, nil
}

// clientConfig is the engine config of a checked `turn:` section, the
// same mapping runTurn makes (kept apart from runTurn only to stay out of
// a concurrent change there; fold runTurn onto it when both are in).
func clientConfig(t *TurnConfig, identity string, key []byte) turnclient.Config {
	return turnclient.Config{
		Provider: strings.ToLower(t.Provider), Link: t.Link, RESTSecret: t.RESTSecret,
		TURNHost: t.Server, TURNPort: t.Port, Peer: t.Peer, Connections: t.Connections,
		BindIP: t.BindInterface, Mode: t.Mode, Ingress: t.Ingress, HandshakeTimeout: t.HandshakeTimeout,
		AllocationCheck: t.AllocationCheck, Compat: t.Compat, PSKIdentity: identity, PSK: key,
	}
}

func controlCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the local control API: TURN profiles, sessions, events, challenges, diagnostics",
		Long: `control serves tunnel-client's control API on --listen (loopback only), the
local counterpart of the upstream's clientd: profiles (turn: configs that
reference their secrets by file), sessions (several at once, in-process),
an NDJSON event stream, provider challenges (VK's captcha) and a sanitized
diagnostics bundle; see docs/protocols/turn-control.md.

Callers authenticate with the bearer token in --token-file, created 0600 on
first start. It prints "listening ADDR token_file=PATH" once it accepts.

The subcommands are its clients for scripts: status, start, stop, events.
Exit codes: 0 ok, 1 failure, 2 usage or config error (a bad profile, an
unknown name), 3 provider not available.`,
		Args: cobra.NoArgs,
	}
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return runControl(cmd.Context(), app, &cfg.Control, out)
	}
	cmd.AddCommand(controlStatusCmd(app, cfg), controlStartCmd(app, cfg), controlStopCmd(app, cfg), controlEventsCmd(app, cfg))
	return cmd
}

func runControl(ctx context.Context, app *cli.App, c *ControlConfig, out *cli.Output) error {
	dir, err := c.stateDir()
	if err != nil {
		return err
	}
	tokenFile, err := c.tokenFile()
	if err != nil {
		return err
	}
	token, err := loadOrCreateToken(tokenFile)
	if err != nil {
		return &cli.ConfigError{Key: "control.token_file", Err: err}
	}
	ctl, err := turncontrol.New(turncontrol.Config{StateDir: dir, Token: token, Prepare: prepareProfile, Version: buildinfo.Get().Version}, app.Logger)
	if err != nil {
		return &cli.ConfigError{Key: "control.state_dir", Err: err}
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		ctl.Close()
		return fmt.Errorf("control listener %s (control.listen): %w", c.Listen, err)
	}
	if out.JSON() {
		cli.WriteJSONLine(app.Stdout, map[string]any{"event": "listening", "listen": ln.Addr().String(), "token_file": tokenFile, "state_dir": dir})
	} else {
		fmt.Fprintf(app.Stdout, "listening %s token_file=%s\n", ln.Addr(), tokenFile)
	}
	return app.RunDaemon(ctx, func(ctx context.Context) error { return ctl.Serve(ctx, ln) })
}

// apiClient talks to a running control API.
type apiClient struct {
	base, token string
	http        *http.Client
}

// clientFlags are the subcommands' connection flags; unset, they come
// from control.listen and control.token_file.
type clientFlags struct{ addr, tokenFile string }

func addClientFlags(cmd *cobra.Command) *clientFlags {
	f := &clientFlags{}
	cmd.Flags().StringVar(&f.addr, "addr", "", "control API address (default: control.listen)")
	cmd.Flags().StringVar(&f.tokenFile, "token-file", "", "bearer token file (default: control.token_file)")
	return f
}

func (f *clientFlags) client(cfg *Config) (*apiClient, error) {
	addr := f.addr
	if addr == "" {
		addr = cfg.Control.Listen
	}
	if err := turncontrol.CheckListen(addr); err != nil {
		return nil, cli.Usagef("--addr: %v", err)
	}
	path := f.tokenFile
	if path == "" {
		var err error
		if path, err = cfg.Control.tokenFile(); err != nil {
			return nil, err
		}
	}
	tok, err := secret.FromFile(os.ReadFile, path)
	if err != nil {
		return nil, &cli.ConfigError{Key: "control.token_file", Err: fmt.Errorf("%w (is tunnel-client control running with this state dir?)", err)}
	}
	return &apiClient{base: "http://" + addr, token: tok, http: &http.Client{}}, nil
}

// do sends one request and decodes a 2xx JSON answer into out; other
// answers become errors with the exit code their status means.
func (a *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := a.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}

func (a *apiClient) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control API: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	var e turncontrol.APIError
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
	if e.Error == "" {
		e.Error = resp.Status
	}
	err = fmt.Errorf("control API: %s", e.Error)
	switch resp.StatusCode {
	case http.StatusBadRequest, http.StatusNotFound:
		return nil, &cli.UsageError{Err: err}
	case http.StatusUnauthorized:
		return nil, &cli.ConfigError{Key: "control.token_file", Err: err}
	}
	return nil, err
}

func controlStatusCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [PROFILE]",
		Short: "Show the sessions (or one profile's session)",
		Args:  cobra.MaximumNArgs(1),
	}
	cf := addClientFlags(cmd)
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		api, err := cf.client(cfg)
		if err != nil {
			return err
		}
		var views []turncontrol.SessionView
		if len(args) == 1 {
			var v turncontrol.SessionView
			if err := api.do(cmd.Context(), "GET", "/v1/sessions/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
			views = append(views, v)
		} else if err := api.do(cmd.Context(), "GET", "/v1/sessions", nil, &views); err != nil {
			return err
		}
		if out.JSON() {
			if len(args) == 1 {
				return cli.WriteJSON(app.Stdout, views[0])
			}
			return cli.WriteJSON(app.Stdout, views)
		}
		for _, v := range views {
			printSession(app, v)
		}
		return nil
	}
	return cmd
}

func printSession(app *cli.App, v turncontrol.SessionView) {
	ready := 0
	for _, w := range v.Workers {
		if w.State == "ready" {
			ready++
		}
	}
	fmt.Fprintf(app.Stdout, "%s state=%s stage=%s local=%s workers=%d/%d", v.Profile, v.State, v.Stage, v.Local, ready, len(v.Workers))
	if len(v.Challenges) > 0 {
		fmt.Fprintf(app.Stdout, " challenges=%s", strings.Join(v.Challenges, ","))
	}
	if v.Error != "" {
		fmt.Fprintf(app.Stdout, " error=%q", v.Error)
	}
	fmt.Fprintln(app.Stdout)
}

// sessionFailure is the exit of a failed session: the same codes and
// message as `tunnel-client turn`.
func sessionFailure(v turncontrol.SessionView) error {
	msg := fmt.Errorf("client runtime failed stage=%s: %s", v.Stage, v.Error)
	switch {
	case v.ProviderUnavailable:
		return &cli.ExitError{Code: 3, Err: msg}
	case v.Stage == overlay.StagePolicyValidate:
		return &cli.ConfigError{Err: msg}
	}
	return msg
}

func controlStartCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "start PROFILE",
		Short: "Start a profile's session; with --wait, until it is ready",
		Args:  cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	out := cli.AddOutputFlag(cmd)
	wait := cmd.Flags().Duration("wait", 0, "wait up to this long for the session to be ready (0: return once started); a failure exits like tunnel-client turn")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if *wait < 0 {
			return cli.Usagef("--wait: must not be negative")
		}
		api, err := cf.client(cfg)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		var v turncontrol.SessionView
		if err := api.do(ctx, "POST", "/v1/sessions", turncontrol.StartRequest{Profile: args[0]}, &v); err != nil {
			return err
		}
		deadline := time.Now().Add(*wait)
		for *wait > 0 && v.State == turncontrol.StateStarting {
			if time.Now().After(deadline) {
				return fmt.Errorf("session %s not ready after %v: state=%s stage=%s", v.Profile, *wait, v.State, v.Stage)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if err := api.do(ctx, "GET", "/v1/sessions/"+url.PathEscape(args[0]), nil, &v); err != nil {
				return err
			}
		}
		if out.JSON() {
			cli.WriteJSON(app.Stdout, v)
		} else {
			printSession(app, v)
		}
		if v.State == turncontrol.StateFailed {
			return sessionFailure(v)
		}
		return nil
	}
	return cmd
}

func controlStopCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stop PROFILE",
		Short: "Stop a profile's session and wait for it to end",
		Args:  cobra.ExactArgs(1),
	}
	cf := addClientFlags(cmd)
	out := cli.AddOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		api, err := cf.client(cfg)
		if err != nil {
			return err
		}
		var v turncontrol.SessionView
		if err := api.do(cmd.Context(), "POST", "/v1/sessions/"+url.PathEscape(args[0])+"/stop", nil, &v); err != nil {
			return err
		}
		if out.JSON() {
			return cli.WriteJSON(app.Stdout, v)
		}
		printSession(app, v)
		return nil
	}
	return cmd
}

func controlEventsCmd(app *cli.App, cfg *Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Print the event history as NDJSON (with --follow, then new events as they happen)",
		Long: `events prints the control plane's events, one JSON object a line, from
after --after (a seq from an earlier line; 0 for everything still held).
Without --follow it stops at the last one; resume later with --after.`,
		Args: cobra.NoArgs,
	}
	cf := addClientFlags(cmd)
	after := cmd.Flags().Uint64("after", 0, "print the events after this sequence number")
	follow := cmd.Flags().Bool("follow", false, "keep printing new events until interrupted")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		api, err := cf.client(cfg)
		if err != nil {
			return err
		}
		resp, err := api.send(cmd.Context(), "GET", fmt.Sprintf("/v1/events?after=%d&follow=%t", *after, *follow), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintf(app.Stdout, "%s\n", sc.Bytes())
		}
		if err := sc.Err(); err != nil && cmd.Context().Err() == nil {
			return fmt.Errorf("event stream: %w", err)
		}
		return nil
	}
	return cmd
}
