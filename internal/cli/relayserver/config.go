package relayserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/cluster"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelapi"
)

// Config is relay-server's configuration file (relay-server.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`

	Listen    string `yaml:"listen" flag:"listen,l" usage:"address to serve HTTP(S) on"`
	PublicURL string `yaml:"public_url" flag:"public-url" usage:"URL clients reach this relay at, used in links it hands out; empty means derived from listen"`
	DataDir   string `yaml:"data_dir" flag:"data-dir" usage:"directory for persistent state: the database and the SSH host keys of the tunnel relay sockets"`
	Dev       bool   `yaml:"dev" flag:"dev" usage:"development mode: loopback only, admin key generated and printed, data in a temp dir removed on exit unless data_dir is set"`
	// The admin subcommands use the admin key too, so its flag is global.
	AdminKey string `yaml:"admin_key" flag:"admin-key" secret:"true" cmd:"*" usage:"admin key for the management API (required unless dev)"`

	TLS struct {
		CertFile string `yaml:"cert_file" flag:"tls-cert-file" usage:"PEM certificate chain; with key_file, serve HTTPS instead of plain HTTP"`
		KeyFile  string `yaml:"key_file" flag:"tls-key-file" usage:"PEM private key for cert_file"`
	} `yaml:"tls"`

	Tunnels struct {
		TokenTTL  time.Duration `yaml:"token_ttl" usage:"lifetime of tunnel access tokens handed out by the management API"`
		ClusterID string        `yaml:"cluster_id" usage:"clusterId of every tunnel; the Dev Tunnels SDKs put it in front of the relay's host name (see README); empty: the first label of public_url's host"`
		WebDomain string        `yaml:"web_domain" flag:"web-domain" usage:"serve tunnel ports at <tunnelId>-<port>.<web_domain> (needs wildcard DNS); empty: only the path form /tunnels/<id>/ports/<port>/"`
		Expose    []Exposure    `yaml:"expose" usage:"tunnel ports published raw on relay listen addresses, with no token: list of {listen, tunnel, port}"`
	} `yaml:"tunnels"`

	Tickets struct {
		Enabled       bool          `yaml:"enabled" usage:"serve the ticket byte relay (/v1/tickets, /v1/relay/...)"`
		DefaultTTL    time.Duration `yaml:"default_ttl" usage:"pairing deadline when a mint gives no ttl_seconds"`
		MaxTTL        time.Duration `yaml:"max_ttl" usage:"longest pairing deadline a mint may ask for"`
		MaxBytes      cli.ByteSize  `yaml:"max_bytes" usage:"upload limit when a mint gives no max_bytes"`
		MaxBytesLimit cli.ByteSize  `yaml:"max_bytes_limit" usage:"largest max_bytes a mint may ask for"`
		IdleTimeout   time.Duration `yaml:"idle_timeout" usage:"abort a paired transfer when no byte moves for this long"`
		WorkspaceCap  int           `yaml:"workspace_cap" usage:"live tickets allowed per workspace"`
	} `yaml:"tickets"`

	Store struct {
		DSN string `yaml:"dsn" secret:"true" usage:"PostgreSQL connection string (postgres://user:password@host:5432/db or key=value form) shared by the relay nodes of a cluster; empty: SQLite in data_dir. It holds the password: prefer store.dsn_file"`
	} `yaml:"store"`

	Cluster struct {
		NodeID      string        `yaml:"node_id" usage:"this relay node's name in the store's node registry, unique in the cluster and stable across restarts"`
		InternalURL string        `yaml:"internal_url" usage:"URL other relay nodes reach this node at; empty on a single node"`
		PublicURL   string        `yaml:"public_url" usage:"URL clients reach this node at directly (not through the load balancer); empty: public_url"`
		Lease       time.Duration `yaml:"lease" usage:"a node that has not renewed its registration for this long is dead, and what it held is released"`
		Secret      string        `yaml:"secret" secret:"true" usage:"shared by every node of a cluster (at least 16 characters): authenticates the node-to-node hop that carries a client, wing user or ticket side to the node holding its host, wing or ticket; empty: no hop, each node serves only what it holds. Prefer cluster.secret_file"`
	} `yaml:"cluster"`

	Wings struct {
		Bandwidth struct {
			Rate       cli.ByteSize `yaml:"rate" usage:"per-user sustained PTY output to browsers and wing attach, in bytes per second; faster output is delayed; 0: no limit (upstream's free tier: 375KB)"`
			Burst      cli.ByteSize `yaml:"burst" usage:"per-user token bucket size for rate; 0 means rate (at least 512KiB)"`
			MonthlyCap cli.ByteSize `yaml:"monthly_cap" usage:"per-user PTY output per calendar month (UTC), kept in the store (survives restarts); past it the user gets bandwidth.exceeded and is disconnected; 0: no cap"`
		} `yaml:"bandwidth"`
		ICE struct {
			STUNURLs   []string      `yaml:"stun_urls" usage:"STUN servers handed to wings and clients for direct (WebRTC) sessions, as stun:host:port; empty: none (host candidates still work on a LAN)"`
			TURNURLs   []string      `yaml:"turn_urls" usage:"TURN servers (coturn with use-auth-secret) for direct sessions, as turn:host:port?transport=udp; each wing and client gets short-lived credentials for them"`
			TURNSecret string        `yaml:"turn_secret" secret:"true" usage:"the TURN servers' static-auth-secret (coturn use-auth-secret), from which the TURN REST credentials are computed"`
			TTL        time.Duration `yaml:"ttl" usage:"lifetime of the handed-out TURN credentials"`
		} `yaml:"ice"`
	} `yaml:"wings"`
}

// Exposure publishes one tunnel port on a relay listen address.
type Exposure struct {
	Listen string `yaml:"listen"`
	Tunnel string `yaml:"tunnel"`
	Port   int    `yaml:"port"`
}

func defaultConfig() *Config {
	c := &Config{Daemon: cli.DefaultDaemon(), Listen: ":8080", DataDir: "/var/lib/warren"}
	c.Tunnels.TokenTTL = time.Hour
	c.Tickets.Enabled = true
	c.Tickets.DefaultTTL = 5 * time.Minute
	c.Tickets.MaxTTL = 24 * time.Hour
	c.Tickets.MaxBytes = 1 << 30
	c.Tickets.MaxBytesLimit = 64 << 30
	c.Tickets.IdleTimeout = 60 * time.Second
	c.Tickets.WorkspaceCap = 16
	c.Cluster.NodeID = cluster.DefaultNodeID
	c.Cluster.Lease = cluster.DefaultLease
	c.Wings.ICE.TTL = time.Hour
	return c
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return cli.FieldErrorf("listen", "expected host:port such as :8080 or 127.0.0.1:8080: %w", err)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cli.FieldErrorf("public_url", "expected an http:// or https:// URL, got %q", c.PublicURL)
		}
	}
	if c.Cluster.NodeID == "" || strings.ContainsAny(c.Cluster.NodeID, " \t\r\n\x00/") {
		return cli.FieldErrorf("cluster.node_id", "expected a name without spaces or slashes such as relay-a, got %q", c.Cluster.NodeID)
	}
	for key, v := range map[string]string{"cluster.internal_url": c.Cluster.InternalURL, "cluster.public_url": c.Cluster.PublicURL} {
		if v == "" {
			continue
		}
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cli.FieldErrorf(key, "expected an http:// or https:// URL, got %q", v)
		}
	}
	if sec := c.Cluster.Secret; sec != "" && len(strings.TrimSpace(sec)) < 16 {
		// The value is a secret: the error does not repeat it.
		return cli.FieldErrorf("cluster.secret", "must be at least 16 characters (generate one with: openssl rand -hex 32)")
	}
	if c.Cluster.Lease < time.Second || c.Cluster.Lease > 10*time.Minute {
		return cli.FieldErrorf("cluster.lease", "must be between 1s and 10m, got %s", c.Cluster.Lease)
	}
	if d := c.Store.DSN; d != "" && !strings.HasPrefix(d, "postgres://") && !strings.HasPrefix(d, "postgresql://") && !strings.Contains(d, "=") {
		// The value is a secret: the error does not repeat it.
		return cli.FieldErrorf("store.dsn", "expected a postgres:// URL or key=value connection string")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return cli.FieldErrorf("tls.cert_file", "tls.cert_file and tls.key_file go together")
	}
	if c.Tunnels.TokenTTL < time.Minute || c.Tunnels.TokenTTL > 24*time.Hour {
		return cli.FieldErrorf("tunnels.token_ttl", "must be between 1m and 24h, got %s", c.Tunnels.TokenTTL)
	}
	if id := c.Tunnels.ClusterID; id != "" {
		if err := tunnelapi.ValidClusterID(id); err != nil {
			return cli.FieldErrorf("tunnels.cluster_id", "%w", err)
		}
	}
	if d := c.Tunnels.WebDomain; d != "" && (strings.HasPrefix(d, ".") || strings.HasSuffix(d, ".") || strings.ContainsAny(d, "/:* ")) {
		return cli.FieldErrorf("tunnels.web_domain", "expected a DNS name such as tunnels.example.com, got %q", d)
	}
	seen := map[string]bool{c.Listen: true}
	for i, e := range c.Tunnels.Expose {
		key := fmt.Sprintf("tunnels.expose[%d]", i)
		if _, _, err := net.SplitHostPort(e.Listen); err != nil {
			return cli.FieldErrorf(key+".listen", "expected host:port such as 127.0.0.1:2222: %w", err)
		}
		if seen[e.Listen] {
			return cli.FieldErrorf(key+".listen", "%s is already in use by listen or another exposure", e.Listen)
		}
		seen[e.Listen] = true
		if e.Tunnel == "" {
			return cli.FieldErrorf(key+".tunnel", "is required: the tunnel's ID or name")
		}
		if e.Port < 1 || e.Port > 65535 {
			return cli.FieldErrorf(key+".port", "must be a port number 1-65535, got %d", e.Port)
		}
	}
	if c.Tickets.DefaultTTL <= 0 {
		return cli.FieldErrorf("tickets.default_ttl", "must be positive")
	}
	if c.Tickets.MaxTTL < c.Tickets.DefaultTTL {
		return cli.FieldErrorf("tickets.max_ttl", "must be at least tickets.default_ttl (%s)", c.Tickets.DefaultTTL)
	}
	if c.Tickets.MaxBytes < 1 {
		return cli.FieldErrorf("tickets.max_bytes", "must be at least 1")
	}
	if c.Tickets.MaxBytesLimit < c.Tickets.MaxBytes {
		return cli.FieldErrorf("tickets.max_bytes_limit", "must be at least tickets.max_bytes (%s)", c.Tickets.MaxBytes)
	}
	if c.Tickets.IdleTimeout <= 0 {
		return cli.FieldErrorf("tickets.idle_timeout", "must be positive")
	}
	if c.Tickets.WorkspaceCap < 1 {
		return cli.FieldErrorf("tickets.workspace_cap", "must be at least 1")
	}
	if c.ShutdownTimeout <= 0 {
		return cli.FieldErrorf("shutdown_timeout", "must be positive")
	}
	return c.validateICE()
}

func (c *Config) validateICE() error {
	ice := c.Wings.ICE
	for i, u := range ice.STUNURLs {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "stuns:") {
			return cli.FieldErrorf(fmt.Sprintf("wings.ice.stun_urls[%d]", i), "expected a stun: URL such as stun:stun.example.com:3478, got %q", u)
		}
	}
	for i, u := range ice.TURNURLs {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			return cli.FieldErrorf(fmt.Sprintf("wings.ice.turn_urls[%d]", i), "expected a turn: URL such as turn:turn.example.com:3478?transport=udp, got %q", u)
		}
	}
	if len(ice.TURNURLs) > 0 && ice.TURNSecret == "" {
		return cli.FieldErrorf("wings.ice.turn_secret", "is required with wings.ice.turn_urls: the TURN servers' static-auth-secret (or wings.ice.turn_secret_file)")
	}
	if ice.TTL < time.Minute || ice.TTL > 7*24*time.Hour {
		return cli.FieldErrorf("wings.ice.ttl", "must be between 1m and 168h, got %s", ice.TTL)
	}
	return nil
}

var errNoAdminKey = errors.New("not set: set WARREN_RELAY_SERVER_ADMIN_KEY or admin_key_file, or run with --dev")
