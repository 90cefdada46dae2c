package wing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/buildinfo"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingagent"
)

func serveCmd(app *cli.App, cfg *Config) *cobra.Command {
	app.Preflight("serve", func() error { _, err := checkServe(app, cfg); return err })
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the wing agent: register with the relay and serve terminal sessions",
		Long: `serve dials the relay's /ws/wing with the wing token, registers, heartbeats,
and runs PTY sessions for the token's user. It reconnects with backoff (1s
doubling to 10s), at once when the relay announces a restart, and keeps
sessions across reconnects. A rejected token stops it with exit code 1.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), app, cfg) },
	}
}

// checkServe is what serve checks before it dials, and what 'wing config
// validate serve' runs beyond the formats; it creates nothing. It returns
// the identity key's path.
func checkServe(app *cli.App, cfg *Config) (string, error) {
	if err := needRelay(cfg); err != nil {
		return "", err
	}
	if cfg.Serve.Token == "" {
		return "", &cli.ConfigError{Key: "serve.token", Err: errors.New("not set: give --token-file, WARREN_WING_SERVE_TOKEN or serve.token_file (mint one with: relay-server wings token --kind wing --user YOU)")}
	}
	keyPath := cfg.Serve.IdentityKey
	if keyPath == "" {
		p, err := defaultIdentityPath()
		if err != nil {
			return "", &cli.ConfigError{Key: "serve.identity_key", Err: err}
		}
		keyPath = p
	}
	if _, err := os.Stat(keyPath); err == nil {
		// It exists: loading only reads it (and checks its mode).
		if _, err := wingagent.LoadOrCreateIdentity(keyPath); err != nil {
			return "", &cli.ConfigError{Key: "serve.identity_key", Where: app.Source("serve.identity_key"), Err: err}
		}
	} else if err := cli.CheckDirCreatable(filepath.Dir(keyPath)); err != nil {
		return "", &cli.ConfigError{Key: "serve.identity_key", Where: app.Source("serve.identity_key"), Err: fmt.Errorf("identity key %s: %w", keyPath, err)}
	}
	return keyPath, nil
}

// openHelper is this executable, for sessions' $BROWSER ("" if unknown).
func openHelper() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return exe
}

func serve(ctx context.Context, app *cli.App, cfg *Config) error {
	keyPath, err := checkServe(app, cfg)
	if err != nil {
		return err
	}
	key, err := wingagent.LoadOrCreateIdentity(keyPath)
	if err != nil {
		return &cli.ConfigError{Key: "serve.identity_key", Where: app.Source("serve.identity_key"), Err: err}
	}
	wingID := cfg.Serve.WingID
	if wingID == "" {
		wingID, _ = os.Hostname()
	}
	agents := map[string][]string{}
	shell := cfg.Serve.Shell
	if shell == "" {
		if shell = os.Getenv("SHELL"); shell == "" {
			shell = "/bin/sh"
		}
	}
	for _, a := range cfg.Serve.Agents {
		agents[a.Name] = []string{shell, "-c", a.Command}
	}
	stateDir := cfg.Serve.StateDir
	if stateDir == "" {
		if stateDir, err = cli.StatePath("the wing's state (or set serve.state_dir)", "wing"); err != nil {
			return &cli.ConfigError{Key: "serve.state_dir", Err: err}
		}
	}
	log := app.Logger
	acc, err := accessOf(cfg)
	if err != nil {
		return err
	}
	a, err := wingagent.New(wingagent.Config{
		Access:            acc,
		OpenHelper:        openHelper(),
		StateDir:          stateDir,
		PasskeyTTL:        cfg.Serve.PasskeyTTL,
		RelayURL:          cfg.Relay,
		Token:             cfg.Serve.Token,
		WingID:            wingID,
		Key:               key,
		Version:           buildinfo.Get().Version,
		Shell:             shell,
		Agents:            agents,
		AllowCommands:     cfg.Serve.AllowCommands,
		Spectate:          cfg.Serve.Spectate,
		HeartbeatInterval: cfg.Serve.HeartbeatInterval,
		DisableDirect:     !cfg.Serve.Direct,
		DirectNetworks:    mustPrefixes(cfg.Serve.DirectNetworks),
		OutputWindow:      outputWindow(cfg.Serve.OutputWindow),
		OnState:           func(s wingagent.State) { log.Debug("connection state", "state", string(s)) },
	}, log)
	if err != nil {
		return &cli.ConfigError{Key: "serve.state_dir", Where: app.Source("serve.state_dir"), Err: err}
	}
	log.Info("wing starting", "wing", wingID, "relay", cfg.Relay, "public_key", a.PublicKey(), "identity_key", keyPath)
	// SIGHUP: the lock and the allow list change in place; sessions stay.
	app.OnReload(func(ctx context.Context, fresh any) error {
		acc, err := accessOf(fresh.(*Config))
		if err != nil {
			return err
		}
		a.SetAccess(ctx, acc)
		return nil
	})
	return app.RunDaemon(ctx, func(ctx context.Context) error {
		err := a.Run(ctx)
		if errors.Is(err, wingagent.ErrAuthRejected) {
			return &cli.ExitError{Code: cli.ExitFailure, Err: fmt.Errorf("%w; not retrying: mint a new one with 'relay-server wings token --kind wing' and set serve.token (%s)", err, app.Source("serve.token"))}
		}
		return err
	})
}
