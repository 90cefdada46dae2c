package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `relay-server config validate` refuses what serving refuses, with the
// same message (key and where it was set), exit 2, and creates nothing.
func TestRelayValidateRunsServeChecks(t *testing.T) {
	dir := t.TempDir()
	notAFile := filepath.Join(dir, "plain-file")
	os.WriteFile(notAFile, []byte("x"), 0o600)
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte("data_dir: "+filepath.Join(notAFile, "data")+"\n"), 0o600)
	withKey := cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY=k")
	goodData := "--data-dir=" + t.TempDir()
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"missing TLS files", withKey, []string{goodData, "--tls-cert-file", filepath.Join(dir, "no-cert.pem"), "--tls-key-file", filepath.Join(dir, "no-key.pem")},
			[]string{"config tls.cert_file (flag --tls-cert-file)", "no-cert.pem"}},
		{"empty admin_key", cleanEnv(t), []string{goodData},
			[]string{"config admin_key", "not set"}},
		{"uncreatable data dir", withKey, []string{"-c", cfg},
			[]string{"config data_dir (" + cfg + ":1)", notAFile + " is not a directory"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := run(t, dir, c.env, "relay-server", append(c.args, "config", "validate")...)
			v.wantCode(t, 2, "config validate")
			for _, w := range c.want {
				if !strings.Contains(v.stderr, w) {
					t.Errorf("config validate stderr lacks %q: %s", w, v.stderr)
				}
			}
			// Serving refuses it with the same words, before it listens.
			s := run(t, dir, c.env, "relay-server", append(c.args, "--listen", "127.0.0.1:0")...)
			s.wantCode(t, 2, "serve")
			if s.stderr != v.stderr {
				t.Errorf("serve and config validate disagree:\nserve:    %svalidate: %s", s.stderr, v.stderr)
			}
		})
	}
	// A data dir that does not exist yet but can be made passes, and
	// validate does not make it.
	fresh := filepath.Join(dir, "new", "deeper")
	run(t, dir, withKey, "relay-server", "--data-dir", fresh, "config", "validate").wantCode(t, 0, "creatable data dir")
	if _, err := os.Stat(filepath.Join(dir, "new")); !os.IsNotExist(err) {
		t.Errorf("config validate created %s (stat: %v)", filepath.Join(dir, "new"), err)
	}
	// --dev needs no admin key.
	run(t, dir, cleanEnv(t), "relay-server", "--dev", "config", "validate").wantCode(t, 0, "--dev without admin key")
}

// `relay-server --dev --data-dir D` keeps its data in D across restarts.
func TestRelayDevKeepsExplicitDataDir(t *testing.T) {
	data := filepath.Join(t.TempDir(), "relay-data")
	devRelay := func() (*daemon, string, []string) {
		d := start(t, t.TempDir(), cleanEnv(t), "relay-server", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data)
		url := d.stdout.wait(t, regexpOf(`listening on (http://\S+)`), 30*time.Second)[1]
		key := d.stdout.wait(t, regexpOf(`admin key \(shown once\): (\S+)`), 5*time.Second)[1]
		d.stdout.wait(t, regexpOf(`data dir \(kept\): `+regexp.QuoteMeta(data)), 5*time.Second)
		return d, url, cleanEnv(t, "WARREN_RELAY_SERVER_ADMIN_KEY="+key)
	}
	stop := func(d *daemon) {
		d.cmd.Process.Signal(syscall.SIGTERM)
		if code := d.exitCode(t, 20*time.Second); code != 0 {
			t.Fatalf("relay-server --dev exit %d\n%s", code, d.stderr)
		}
	}
	d, url, admin := devRelay()
	run(t, t.TempDir(), admin, "relay-server", "tunnels", "create", "kept", "--server", url).wantCode(t, 0, "tunnels create")
	stop(d)
	if _, err := os.Stat(filepath.Join(data, "relay.db")); err != nil {
		t.Fatalf("data dir after stop: %v", err)
	}
	d, url, admin = devRelay()
	run(t, t.TempDir(), admin, "relay-server", "tunnels", "show", "kept", "--server", url).wantCode(t, 0, "tunnels show after restart")
	stop(d)
}

// Admin subcommands list the flags that apply to them, not the server's.
func TestRelayAdminHelpListsNoServingFlags(t *testing.T) {
	dir, env := t.TempDir(), cleanEnv(t)
	serving := []string{"--data-dir", "--tls-cert-file", "--tls-key-file", "--listen", "--dev", "--public-url", "--web-domain", "--shutdown-timeout"}
	for _, args := range [][]string{{"tunnels"}, {"tunnels", "list"}, {"keys"}, {"keys", "create"}, {"tickets"}, {"tickets", "mint"}, {"wings"}} {
		r := run(t, dir, env, "relay-server", append(args, "--help")...)
		r.wantCode(t, 0, strings.Join(args, " ")+" --help")
		for _, f := range serving {
			if strings.Contains(r.stdout, f) {
				t.Errorf("relay-server %s --help lists %s:\n%s", strings.Join(args, " "), f, r.stdout)
			}
		}
		for _, f := range []string{"--config", "--log-level", "--admin-key-file"} {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("relay-server %s --help lacks %s:\n%s", strings.Join(args, " "), f, r.stdout)
			}
		}
	}
	r := run(t, dir, env, "relay-server", "tunnels", "list", "--data-dir", dir)
	r.wantCode(t, 2, "admin command with a serving flag")
	for _, args := range [][]string{{}, {"config", "validate"}, {"config", "show"}} {
		r := run(t, dir, env, "relay-server", append(args, "--help")...)
		for _, f := range serving {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("relay-server %s --help lacks %s", strings.Join(args, " "), f)
			}
		}
	}
	// Admin commands still read the server's config (file, env) to find it.
	_, url := startRelay(t, "admin-k")
	keyFile := filepath.Join(dir, "admin.key")
	os.WriteFile(keyFile, []byte("admin-k\n"), 0o600)
	cfg := filepath.Join(dir, "relay.yaml")
	os.WriteFile(cfg, []byte("public_url: "+url+"\nadmin_key_file: "+keyFile+"\nlog_level: debug\n"), 0o600)
	run(t, dir, env, "relay-server", "-c", cfg, "keys", "list").wantCode(t, 0, "keys list with the relay's config file")
	run(t, dir, cleanEnv(t, "WARREN_RELAY_SERVER_PUBLIC_URL="+url), "relay-server", "--admin-key-file", keyFile, "tunnels", "list").wantCode(t, 0, "tunnels list with env and --admin-key-file")
}

// The other daemons' `config validate` also runs what their serving
// command checks first (required keys, files), with the same message.
func TestDaemonsValidateRunServeChecks(t *testing.T) {
	dir := t.TempDir()
	notAFile := filepath.Join(dir, "plain-file")
	os.WriteFile(notAFile, []byte("x"), 0o600)
	cases := []struct {
		bin       string
		env       []string
		validate  []string // config validate args
		serve     []string // the serving command with the same config
		want      string
		sameWords bool
	}{
		{"tunnel-host", cleanEnv(t, "WARREN_TUNNEL_HOST_API_KEY=k"), []string{"--tunnel", "x", "config", "validate"}, []string{"--tunnel", "x"}, "config relay: not set", true},
		{"tunnel-server", cleanEnv(t, "WARREN_TUNNEL_SERVER_CONNECT=127.0.0.1:1"), []string{"config", "validate"}, []string{"--listen", "127.0.0.1:0"}, "config psk: no pre-shared key", true},
		{"wing", cleanEnv(t, "WARREN_WING_RELAY=http://127.0.0.1:1"), []string{"config", "validate", "serve"}, []string{"serve"}, "config serve.token: not set", true},
		{"wing", cleanEnv(t, "WARREN_WING_RELAY=http://127.0.0.1:1", "WARREN_WING_SERVE_TOKEN=t", "WARREN_WING_SERVE_IDENTITY_KEY="+filepath.Join(notAFile, "id.key")),
			[]string{"config", "validate", "serve"}, []string{"serve"}, "config serve.identity_key (env WARREN_WING_SERVE_IDENTITY_KEY)", true},
		{"tunnel-client", cleanEnv(t, "WARREN_TUNNEL_CLIENT_API_KEY=k"), []string{"config", "validate", "connect"}, []string{"connect", "x"}, "config relay: not set", true},
		{"tunnel-client", cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_PROVIDER=generic-turn", "WARREN_TUNNEL_CLIENT_TURN_LINK=generic-turn://u:p@127.0.0.1:1"),
			[]string{"config", "validate", "turn"}, []string{"turn"}, "config turn.peer: not set", true},
	}
	for _, c := range cases {
		v := run(t, dir, c.env, c.bin, c.validate...)
		v.wantCode(t, 2, c.bin+" "+strings.Join(c.validate, " "))
		if !strings.Contains(v.stderr, c.want) {
			t.Errorf("%s %v: stderr lacks %q: %s", c.bin, c.validate, c.want, v.stderr)
		}
		s := run(t, dir, c.env, c.bin, c.serve...)
		s.wantCode(t, 2, c.bin+" "+strings.Join(c.serve, " "))
		if c.sameWords && s.stderr != v.stderr {
			t.Errorf("%s: serve and config validate disagree:\nserve:    %svalidate: %s", c.bin, s.stderr, v.stderr)
		}
	}
	if _, err := os.Stat(filepath.Join(notAFile, "id.key")); err == nil {
		t.Error("validate created the identity key")
	}
	r := run(t, dir, cleanEnv(t), "tunnel-client", "config", "validate", "nosuch")
	r.wantCode(t, 2, "config validate of a command without checks")
}
