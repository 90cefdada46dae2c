// Package relayserver is the command line of relay-server, warren's
// rendezvous point. The root command serves; `tickets` talks to a running
// server's API.
package relayserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/devtunnels/hostkeys"
	"github.com/warrenhq/warren/internal/relayserver"
	"github.com/warrenhq/warren/internal/store"
	"github.com/warrenhq/warren/internal/store/postgres"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"github.com/warrenhq/warren/internal/ticket"
	"github.com/warrenhq/warren/internal/wing/winghub"
)

var spec = cli.Spec{
	Name:  "relay-server",
	Short: "warren's relay: ticket byte relay, health and metrics over one HTTP(S) listener",
	Long: `relay-server is the rendezvous point every warren peer dials out to.

Run it with no subcommand to serve. For a first try, 'relay-server --dev'
serves on loopback with a generated admin key and a throw-away data dir;
'relay-server --dev --data-dir DIR' keeps its data in DIR across restarts.

The serving flags belong to the root command (and 'config validate|show');
the admin subcommands take --server, --admin-key-file and the global flags.`,
	LocalRootFlags: true,
}

// Main runs relay-server with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, func(cmd *cobra.Command, _ []string) error {
		return serve(cmd.Context(), app, cfg)
	})
	root.AddCommand(ticketsCmd(app, cfg), keysCmd(app, cfg), tunnelsCmd(app, cfg), wingsCmd(app, cfg), clusterCmd(app, cfg))
	app.Preflight("", func() error { _, err := checkServe(app, cfg); return err })
	return root
}

// checkServe is everything serve checks before it opens sockets, and what
// 'config validate' runs beyond the formats; it creates nothing. It returns
// the TLS config when HTTPS is configured.
func checkServe(app *cli.App, cfg *Config) (*tls.Config, error) {
	if cfg.AdminKey == "" && !cfg.Dev {
		return nil, &cli.ConfigError{Key: "admin_key", Where: app.Source("admin_key"), Err: errNoAdminKey}
	}
	var tlsConf *tls.Config
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, &cli.ConfigError{Key: "tls.cert_file", Where: app.Source("tls.cert_file"), Err: fmt.Errorf("load certificate: %w", err)}
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	}
	if !cfg.Dev || devKeepsData(app) {
		if err := cli.CheckDirCreatable(cfg.DataDir); err != nil {
			return nil, &cli.ConfigError{Key: "data_dir", Where: app.Source("data_dir"), Err: err}
		}
	}
	return tlsConf, nil
}

// devKeepsData: --dev with a data dir set explicitly keeps the data there
// across restarts instead of in a temp dir removed on exit.
func devKeepsData(app *cli.App) bool { return app.Source("data_dir") != "default" }

func serve(ctx context.Context, app *cli.App, cfg *Config) error {
	log := app.Logger
	tlsConf, err := checkServe(app, cfg)
	if err != nil {
		return err
	}
	dataNote := "kept"
	if cfg.Dev {
		if err := devSetup(app, cfg); err != nil {
			return err
		}
		if !devKeepsData(app) {
			dataNote = "removed on exit"
			defer os.RemoveAll(cfg.DataDir)
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", cfg.Listen, app.Source("listen"), err)
	}
	defer ln.Close()
	scheme := "http"
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
		scheme = "https"
	}
	url := scheme + "://" + ln.Addr().String()
	publicURL := strings.TrimRight(cfg.PublicURL, "/")
	if publicURL == "" {
		publicURL = url
	}
	db, err := openStore(ctx, app, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	// The SSH host keys of the Dev Tunnels relay sockets, kept in the data
	// dir so that they survive restarts.
	hostKeys, err := hostkeys.LoadOrCreate(cfg.DataDir)
	if err != nil {
		return &cli.ConfigError{Key: "data_dir", Err: fmt.Errorf("SSH host keys: %w", err)}
	}
	nodeURL := strings.TrimRight(cfg.Cluster.PublicURL, "/")
	if nodeURL == "" {
		nodeURL = publicURL
	}
	var exposures []relayserver.Exposure
	for i, e := range cfg.Tunnels.Expose {
		l, err := net.Listen("tcp", e.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s (tunnels.expose[%d].listen, %s): %w", e.Listen, i, app.Source("tunnels.expose"), err)
		}
		defer l.Close()
		exposures = append(exposures, relayserver.Exposure{Listener: l, Tunnel: e.Tunnel, Port: uint16(e.Port)})
	}
	srv, err := relayserver.New(relayserver.Config{
		Store:           db,
		Node:            cfg.Cluster.NodeID,
		InternalURL:     strings.TrimRight(cfg.Cluster.InternalURL, "/"),
		NodePublicURL:   nodeURL,
		Lease:           cfg.Cluster.Lease,
		ClusterSecret:   []byte(strings.TrimSpace(cfg.Cluster.Secret)),
		WebDomain:       cfg.Tunnels.WebDomain,
		ClusterID:       cfg.Tunnels.ClusterID,
		Expose:          exposures,
		PublicURL:       publicURL,
		TokenTTL:        cfg.Tunnels.TokenTTL,
		AdminKey:        cfg.AdminKey,
		SSHHostKeys:     hostKeys,
		TicketsDisabled: !cfg.Tickets.Enabled,
		Tickets: ticket.Config{
			DefaultTTL:      cfg.Tickets.DefaultTTL,
			MaxTTL:          cfg.Tickets.MaxTTL,
			DefaultMaxBytes: int64(cfg.Tickets.MaxBytes),
			MaxBytesLimit:   int64(cfg.Tickets.MaxBytesLimit),
			IdleTimeout:     cfg.Tickets.IdleTimeout,
			WorkspaceCap:    cfg.Tickets.WorkspaceCap,
		},
		ShutdownTimeout: cfg.ShutdownTimeout,
		Wings: winghub.Config{Bandwidth: winghub.Bandwidth{Rate: int64(cfg.Wings.Bandwidth.Rate),
			Burst: int64(cfg.Wings.Bandwidth.Burst), MonthlyCap: int64(cfg.Wings.Bandwidth.MonthlyCap)},
			ICE: winghub.ICE{STUNURLs: cfg.Wings.ICE.STUNURLs, TURNURLs: cfg.Wings.ICE.TURNURLs,
				TURNSecret: cfg.Wings.ICE.TURNSecret, TTL: cfg.Wings.ICE.TTL}},
	}, log)
	if err != nil {
		return err
	}
	return app.RunDaemon(ctx, func(ctx context.Context) error {
		// Announced from inside RunDaemon: signals are handled from here on,
		// so a script that waits for this line may signal right away.
		if cfg.Dev {
			fmt.Fprintf(app.Stdout, "relay-server (dev mode) listening on %s\n", url)
			fmt.Fprintf(app.Stdout, "  admin key (shown once): %s\n", cfg.AdminKey)
			fmt.Fprintf(app.Stdout, "  data dir (%s): %s\n", dataNote, cfg.DataDir)
			fmt.Fprintf(app.Stdout, "  try: WARREN_RELAY_SERVER_ADMIN_KEY=%s relay-server tickets mint --server %s --workspace demo --source a --dest b\n", cfg.AdminKey, url)
		}
		log.Info("relay-server listening", "url", url, "tickets", cfg.Tickets.Enabled)
		return srv.Serve(ctx, ln)
	})
}

// openStore opens the relay's database: PostgreSQL when store.dsn is set,
// else SQLite in data_dir. PostgreSQL is waited for (nodes of a cluster may
// start before their database); the wait ends with ctx.
func openStore(ctx context.Context, app *cli.App, cfg *Config) (store.Store, error) {
	if cfg.Store.DSN != "" {
		var delay time.Duration
		for {
			db, err := postgres.Open(ctx, cfg.Store.DSN)
			if err == nil {
				return db, nil
			}
			if errors.Is(err, postgres.ErrSchemaTooNew) || ctx.Err() != nil {
				return nil, fmt.Errorf("open database (store.dsn, %s): %w", app.Source("store.dsn"), err)
			}
			delay = min(max(2*delay, 500*time.Millisecond), 15*time.Second)
			// The error names host, user and database, never the password.
			app.Logger.Warn("database not reachable; retrying", "err", err, "retry_in", delay)
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(delay):
			}
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, &cli.ConfigError{Key: "data_dir", Err: fmt.Errorf("create %s: %w", cfg.DataDir, err)}
	}
	path := filepath.Join(cfg.DataDir, "relay.db")
	db, err := sqlite.Open(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// devSetup makes --dev a one-command start: loopback only, a temp data dir
// unless one was given, and a fresh admin key unless the user gave one.
func devSetup(app *cli.App, cfg *Config) error {
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		if host != "" && host != "localhost" && app.Source("listen") != "default" {
			app.Logger.Warn("dev mode serves on loopback only; ignoring the listen host", "listen", cfg.Listen)
		}
		cfg.Listen = net.JoinHostPort("127.0.0.1", port)
	}
	if !devKeepsData(app) {
		dir, err := os.MkdirTemp("", "warren-relay-dev-")
		if err != nil {
			return fmt.Errorf("dev data dir: %w", err)
		}
		cfg.DataDir = dir
	}
	if cfg.AdminKey == "" {
		cfg.AdminKey = newAdminKey()
	}
	return nil
}

func newAdminKey() string {
	b := make([]byte, 32)
	rand.Read(b)
	return "wadm_" + base64.RawURLEncoding.EncodeToString(b)
}

// serverURL is where admin subcommands reach the server: --server, else
// public_url, else the listen address on loopback.
func serverURL(flagURL string, cfg *Config) string {
	if flagURL != "" {
		return strings.TrimRight(flagURL, "/")
	}
	if cfg.PublicURL != "" {
		return strings.TrimRight(cfg.PublicURL, "/")
	}
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
