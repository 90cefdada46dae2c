// Package wing is the command line of wing, the machine agent that gives its
// users end-to-end encrypted terminals through a warren relay: `wing serve`
// runs the agent, `wing ls` and `wing attach` are the user side.
package wing

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/warrenhq/warren/internal/cli"
	wattach "github.com/warrenhq/warren/internal/wing/attach"
	"github.com/warrenhq/warren/internal/wing/wingagent"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Agent is a named program sessions can run (pty.start's agent field).
type Agent struct {
	Name    string `yaml:"name" usage:"agent name users ask for"`
	Command string `yaml:"command" usage:"command line, run with the shell's -c"`
}

// AllowUser is one serve.allow entry.
type AllowUser struct {
	User                string `yaml:"user" usage:"relay user id or email"`
	PasskeyPublicKey    string `yaml:"passkey_public_key" usage:"base64 of the raw 64-byte X||Y P-256 public key of the user's passkey; empty: no passkey"`
	PasskeyCredentialID string `yaml:"passkey_credential_id" usage:"the passkey's credential id (base64url), informational"`
}

// Config is wing's configuration file (wing.yaml).
type Config struct {
	cli.Daemon `yaml:",inline"`

	Relay     string `yaml:"relay" flag:"relay" usage:"relay-server base URL, e.g. https://relay.example"`
	UserToken string `yaml:"user_token" flag:"user-token" secret:"true" usage:"user token for ls and attach (relay-server wings token --kind user)"`

	Serve struct {
		Token             string        `yaml:"token" flag:"token" secret:"true" usage:"wing token (relay-server wings token --kind wing)"`
		WingID            string        `yaml:"wing_id" flag:"wing-id" usage:"machine id announced to the relay; empty means the host name. The first user to register an id owns it on that relay"`
		IdentityKey       string        `yaml:"identity_key" flag:"identity-key" usage:"X25519 identity key file, created (mode 0600) on first run; empty means $XDG_STATE_HOME/warren/wing/identity.key (~/.local/state/...)"`
		Shell             string        `yaml:"shell" flag:"shell" usage:"program of the default session; empty means $SHELL, else /bin/sh"`
		Agents            []Agent       `yaml:"agents" usage:"extra named programs sessions may run"`
		AllowCommands     bool          `yaml:"allow_commands" flag:"allow-commands" usage:"run the command line a user sends (wing attach --command); the owner can type it in a shell anyway"`
		Spectate          bool          `yaml:"spectate" flag:"spectate" usage:"let other sockets of the owner watch a session read-only"`
		HeartbeatInterval time.Duration `yaml:"heartbeat_interval" usage:"wing.heartbeat period; the relay drops a wing after 3 missed"`
		Locked            bool          `yaml:"locked" flag:"locked" usage:"serve only the owner and the users on serve.allow; other users of the relay may then reach this wing and are refused by it (reloaded on SIGHUP)"`
		Allow             []AllowUser   `yaml:"allow" usage:"users a locked wing serves, and passkeys that gate a user: list of {user, passkey_public_key, passkey_credential_id} (reloaded on SIGHUP)"`
		PasskeyTTL        time.Duration `yaml:"passkey_ttl" usage:"how long a passkey check holds before the user is asked again"`
		StateDir          string        `yaml:"state_dir" flag:"state-dir" usage:"directory for what survives a restart (allow-list edits made with wing allow, mode 0600); empty means $XDG_STATE_HOME/warren/wing (~/.local/state/...)"`
		Direct            bool          `yaml:"direct" flag:"direct" usage:"let clients move a session onto a direct WebRTC DataChannel (peer to peer, end-to-end encrypted as on the relay)"`
		DirectNetworks    []string      `yaml:"direct_networks" usage:"address prefixes (CIDR) the wing's ICE host candidates may use, e.g. 192.168.0.0/16; empty: all"`
		// OutputWindow: default 2MiB (wingproto.OutputWindow); 0: off.
		OutputWindow cli.ByteSize `yaml:"output_window" flag:"output-window" usage:"per session, the output sent over the relay that an acking viewer (wing attach, the browser terminal) has not yet acknowledged; the program is paused while that much is outstanding, so it cannot overflow the relay's send queue (8MiB) for its viewer; 64KiB to 1GiB, 0: no window"`
	} `yaml:"serve" cmd:"serve"`

	Attach struct {
		DetachKey string        `yaml:"detach_key" flag:"detach-key" usage:"key that detaches from the session, as ctrl-X"`
		Reconnect time.Duration `yaml:"reconnect" flag:"reconnect" usage:"how long to keep reattaching after the relay or wing drops; 0 gives up at once"`
		Direct    string        `yaml:"direct" flag:"direct" usage:"move the session onto a direct WebRTC DataChannel: auto (try, else stay on the relay), off, or require (fail when ICE cannot connect)"`
		// RelayOnly forces the direct path through the relay's TURN servers.
		DirectRelayOnly bool     `yaml:"direct_relay_only" flag:"direct-relay-only" usage:"use only TURN relay candidates for the direct path (ICE transport policy relay)"`
		DirectNetworks  []string `yaml:"direct_networks" usage:"address prefixes (CIDR) attach's ICE host candidates may use; empty: all"`
	} `yaml:"attach" cmd:"attach"`
}

// serve.output_window's bounds: below 64KiB a viewer acks every few
// kilobytes; above 1GiB nothing is held back from any relay's queue.
const (
	minOutputWindow cli.ByteSize = 64 << 10
	maxOutputWindow cli.ByteSize = 1 << 30
)

// outputWindow is wingagent.Config.OutputWindow for serve.output_window.
func outputWindow(w cli.ByteSize) int {
	if w == 0 {
		return -1 // no window
	}
	return int(w)
}

func defaultConfig() *Config {
	c := &Config{Daemon: cli.DefaultDaemon()}
	c.Serve.AllowCommands = true
	c.Serve.HeartbeatInterval = 30 * time.Second
	c.Serve.Agents = []Agent{}
	c.Serve.Allow = []AllowUser{}
	c.Serve.PasskeyTTL = time.Hour
	c.Attach.DetachKey = "ctrl-]"
	c.Attach.Reconnect = 2 * time.Minute
	c.Attach.Direct = "auto"
	c.Serve.Direct = true
	c.Serve.OutputWindow = wp.OutputWindow
	return c
}

// Validate checks what the types alone cannot.
func (c *Config) Validate() error {
	if c.Relay != "" {
		u, err := url.Parse(c.Relay)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return cli.FieldErrorf("relay", "expected an http:// or https:// URL, got %q", c.Relay)
		}
	}
	if c.Serve.HeartbeatInterval < time.Second || c.Serve.HeartbeatInterval > 30*time.Second {
		return cli.FieldErrorf("serve.heartbeat_interval", "must be between 1s and 30s (the relay reaps after 90s), got %s", c.Serve.HeartbeatInterval)
	}
	seen := map[string]bool{}
	for i, a := range c.Serve.Agents {
		if a.Name == "" || strings.ContainsAny(a.Name, " \t") || a.Command == "" {
			return cli.FieldErrorf(fmt.Sprintf("serve.agents[%d]", i), "needs a name without spaces and a command")
		}
		if seen[a.Name] || a.Name == "shell" {
			return cli.FieldErrorf(fmt.Sprintf("serve.agents[%d]", i), "duplicate or reserved name %q", a.Name)
		}
		seen[a.Name] = true
	}
	if _, err := accessOf(c); err != nil {
		return err
	}
	if c.Serve.PasskeyTTL < time.Second {
		return cli.FieldErrorf("serve.passkey_ttl", "must be at least 1s, got %s", c.Serve.PasskeyTTL)
	}
	if _, err := wattach.ParseDetachKey(c.Attach.DetachKey); err != nil {
		return cli.FieldErrorf("attach.detach_key", "%w", err)
	}
	if err := c.validateDirect(); err != nil {
		return err
	}
	if w := c.Serve.OutputWindow; w != 0 && (w < minOutputWindow || w > maxOutputWindow) {
		return cli.FieldErrorf("serve.output_window", "must be 0 (no window) or between %s and %s, got %s", minOutputWindow, maxOutputWindow, w)
	}
	if c.Attach.Reconnect < 0 {
		return cli.FieldErrorf("attach.reconnect", "must not be negative")
	}
	return nil
}

var spec = cli.Spec{
	Name:  "wing",
	Short: "Machine agent with end-to-end encrypted terminals through a warren relay",
	Long: `wing serve runs on the machine to reach: it registers with a relay-server and
runs terminal sessions whose bytes only the user can read (the relay routes
ciphertext). wing ls and wing attach are the user side.`,
}

// Main runs wing with args and returns its exit code.
func Main(args []string) int { return cli.Main(spec, build, args) }

func build(app *cli.App) *cobra.Command {
	cfg := defaultConfig()
	root := app.NewRoot(cfg, nil)
	root.AddCommand(serveCmd(app, cfg), lsCmd(app, cfg), attachCmd(app, cfg), infoCmd(app, cfg), sessionsCmd(app, cfg),
		lsDirCmd(app, cfg), killCmd(app, cfg), allowCmd(app, cfg), trustCmd(app, cfg), openCmd(app), previewCmd(app))
	return root
}

func needRelay(cfg *Config) error {
	if cfg.Relay == "" {
		return &cli.ConfigError{Key: "relay", Err: errors.New("not set: give --relay or WARREN_WING_RELAY")}
	}
	return nil
}

func needUserToken(cfg *Config) error {
	if err := needRelay(cfg); err != nil {
		return err
	}
	if cfg.UserToken == "" {
		return &cli.ConfigError{Key: "user_token", Err: errors.New("not set: give --user-token-file, WARREN_WING_USER_TOKEN or user_token_file (mint one with: relay-server wings token --kind user --user YOU)")}
	}
	return nil
}

// defaultIdentityPath is under the user's state dir.
func defaultIdentityPath() (string, error) {
	return cli.StatePath("the identity key (or set serve.identity_key)", "wing", "identity.key")
}

// accessOf turns serve.locked and serve.allow into the agent's Access.
func accessOf(c *Config) (wingagent.Access, error) {
	acc := wingagent.Access{Locked: c.Serve.Locked}
	idx := map[string]int{}
	for i, a := range c.Serve.Allow {
		key := fmt.Sprintf("serve.allow[%d]", i)
		user := strings.TrimSpace(a.User)
		if user == "" {
			return acc, cli.FieldErrorf(key+".user", "is required: a relay user id or email")
		}
		var pk []wingagent.Passkey
		if a.PasskeyPublicKey != "" {
			raw, err := decodeAnyBase64(a.PasskeyPublicKey)
			if err == nil {
				_, err = wp.ParseP256(raw)
			}
			if err != nil {
				return acc, cli.FieldErrorf(key+".passkey_public_key", "expected base64 of a 64-byte X||Y P-256 key: %w", err)
			}
			pk = []wingagent.Passkey{{CredentialID: a.PasskeyCredentialID, PublicKey: raw}}
		}
		// Several entries for one user add up (several passkeys).
		if j, ok := idx[strings.ToLower(user)]; ok {
			acc.Allow[j].Passkeys = append(acc.Allow[j].Passkeys, pk...)
			continue
		}
		idx[strings.ToLower(user)] = len(acc.Allow)
		acc.Allow = append(acc.Allow, wingagent.AllowEntry{User: user, Passkeys: pk})
	}
	return acc, nil
}

func decodeAnyBase64(s string) ([]byte, error) {
	s = strings.TrimRight(strings.TrimSpace(s), "=")
	if strings.ContainsAny(s, "-_") {
		return base64.RawURLEncoding.DecodeString(s)
	}
	return base64.RawStdEncoding.DecodeString(s)
}
