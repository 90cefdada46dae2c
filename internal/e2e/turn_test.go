package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/needtool"
	"github.com/warrenhq/warren/internal/turn/turnlab"
)

// TURN overlay end to end: the built tunnel-server and `tunnel-client turn`
// through a TURN server (the in-process pion lab, or coturn when installed).

func newKey(t *testing.T) string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func startTURNLab(t *testing.T, cfg turnlab.Config) *turnlab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lab, err := turnlab.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	return lab
}

var serverListeningRE = regexp.MustCompile(`^listening (\S+) `)
var clientReadyRE = regexp.MustCompile(`^ready listen=(\S+) `)

// startTunnelServer runs tunnel-server with env (its PSK) and returns its address.
func startTunnelServer(t *testing.T, env []string, upstream string, args ...string) (*daemon, string) {
	t.Helper()
	all := append([]string{"--listen", "127.0.0.1:0", "--connect", upstream, "--handshake-timeout", "5s"}, args...)
	d := start(t, t.TempDir(), env, "tunnel-server", all...)
	m := d.stdout.wait(t, serverListeningRE, 30*time.Second)
	return d, m[1]
}

type overlayCase struct {
	ingress, mode string
}

func TestTurnOverlayBinaries(t *testing.T) {
	lab := startTURNLab(t, turnlab.Config{})
	for _, tc := range []overlayCase{{"udp", "udp"}, {"udp", "tcp"}, {"tcp", "udp"}, {"tcp", "tcp"}} {
		t.Run(fmt.Sprintf("ingress-%s-turn-over-%s", tc.ingress, tc.mode), func(t *testing.T) {
			key := newKey(t)
			upstream := lab.EchoUDP
			if tc.ingress == "tcp" {
				upstream = lab.EchoTCP
			}
			// Server key from env, client key from a file: both ways a user would.
			srv, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), upstream, "--egress", tc.ingress)
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "psk")
			os.WriteFile(keyFile, []byte(key+"\n"), 0o600)
			turnAddr := lab.TURNUDP
			if tc.mode == "tcp" {
				turnAddr = lab.TURNTCP
			}
			link := fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, turnAddr)
			metricsPort := freePort(t)
			cli := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK="+link), "tunnel-client", "turn",
				"--provider", "generic-turn", "--peer", peer, "--listen", "127.0.0.1:0", "--mode", tc.mode,
				"--ingress", tc.ingress, "--connections", "2", "--psk-file", keyFile,
				"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", metricsPort))
			local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]

			sent := 0
			if tc.ingress == "udp" {
				c, err := net.Dial("udp4", local)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				for i := range 10 {
					sent += udpEcho(t, c, []byte(fmt.Sprintf("datagram-%02d", i)))
				}
			} else {
				for i := range 3 {
					sent += tcpEchoOnce(t, local, 64<<10, i)
				}
			}

			body := scrape(t, metricsPort)
			for _, want := range []string{"warren_runtime_session_starts_total", "warren_runtime_active_workers",
				"warren_runtime_forwarded_packets_total", "warren_runtime_dropped_packets_total", "warren_build_info"} {
				if !strings.Contains(body, want) {
					t.Errorf("metrics lack %s", want)
				}
			}
			if strings.Contains(body, "session_id") {
				t.Error("a metric has a session_id label")
			}
			re := regexp.MustCompile(`warren_runtime_forwarded_bytes_total\{direction="local_to_relay",provider="generic-turn",runtime="client"\} (\d+)`)
			m := re.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("no local_to_relay byte counter in:\n%s", body)
			}
			if n, _ := strconv.Atoi(m[1]); n < sent {
				t.Errorf("local_to_relay bytes %d < %d sent", n, sent)
			} else if tc.ingress == "tcp" && n != sent {
				t.Errorf("local_to_relay bytes %d, sent %d", n, sent)
			}

			// No secret in argv (what ps shows) or in the logs.
			for _, d := range []*daemon{srv, cli} {
				argv, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", d.cmd.Process.Pid))
				for _, secret := range []string{key, turnlab.Password} {
					if bytes.Contains(argv, []byte(secret)) {
						t.Errorf("%s argv holds a secret", d.cmd.Path)
					}
				}
			}
			stopDaemon(t, cli)
			stopDaemon(t, srv)
			for _, d := range []*daemon{srv, cli} {
				logs := d.stderr.String() + d.stdout.String()
				for _, secret := range []string{key, turnlab.Password} {
					if strings.Contains(logs, secret) {
						t.Errorf("%s logs hold a secret:\n%s", d.cmd.Path, logs)
					}
				}
			}
		})
	}
}

func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	if code := d.exitCode(t, 20*time.Second); code != 0 {
		t.Errorf("%s exit %d after SIGINT\nstderr:\n%s", d.cmd.Path, code, d.stderr)
	}
}

func udpEcho(t *testing.T, c net.Conn, msg []byte) int {
	t.Helper()
	buf := make([]byte, 2048)
	sent := 0
	for try := 0; try < 20; try++ {
		c.SetDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Write(msg)
		if err != nil {
			t.Fatal(err)
		}
		sent += n
		if n, err := c.Read(buf); err == nil && bytes.Equal(buf[:n], msg) {
			return sent
		}
	}
	t.Fatalf("no echo of %q", msg)
	return 0
}

func tcpEchoOnce(t *testing.T, addr string, size, id int) int {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	data := make([]byte, size)
	rand.Read(data)
	go c.Write(data)
	got := make([]byte, size)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("stream %d: %v", id, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("stream %d: data differs", id)
	}
	return size
}

func scrape(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestTurnRESTThroughLab(t *testing.T) {
	lab := startTURNLab(t, turnlab.Config{RESTSecret: "lab-rest-secret", DisableStaticUser: true})
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), lab.EchoUDP)
	cli := start(t, t.TempDir(), cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_PSK="+key, "WARREN_TUNNEL_CLIENT_TURN_REST_SECRET=lab-rest-secret"),
		"tunnel-client", "turn", "--provider", "turn-rest", "--link", "turn-rest://alice@"+lab.TURNUDP+"?ttl=10m",
		"--peer", peer, "--listen", "127.0.0.1:0")
	local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
	c, _ := net.Dial("udp4", local)
	defer c.Close()
	udpEcho(t, c, []byte("rest-hello"))
	if strings.Contains(cli.stderr.String(), "lab-rest-secret") {
		t.Error("logs hold the REST secret")
	}
}

func TestTurnFailures(t *testing.T) {
	lab := startTURNLab(t, turnlab.Config{})
	key := newKey(t)
	dir := t.TempDir()
	link := fmt.Sprintf("generic-turn://%s:%s@%s", turnlab.User, turnlab.Password, lab.TURNUDP)
	clientEnv := func(extra ...string) []string {
		return cleanEnv(t, append([]string{"WARREN_TUNNEL_CLIENT_TURN_PSK=" + key}, extra...)...)
	}

	t.Run("vk bad link", func(t *testing.T) {
		r := run(t, dir, clientEnv(), "tunnel-client", "turn", "--provider", "vk", "--link", "x", "--peer", "127.0.0.1:1", "--listen", "127.0.0.1:0")
		r.wantCode(t, 1, "vk")
		if !strings.Contains(r.stderr, `client runtime failed stage=provider_resolve: vk stage vk_invite_link [invalid_link]: invalid vk link`) {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("query in generic-turn link", func(t *testing.T) {
		r := run(t, dir, clientEnv(), "tunnel-client", "turn", "--provider", "generic-turn", "--link", "generic-turn://u:p@h:3478?transport=tcp",
			"--peer", "127.0.0.1:1", "--listen", "127.0.0.1:0")
		r.wantCode(t, 1, "bad link")
		if !strings.Contains(r.stderr, "client runtime failed stage=provider_resolve: invalid generic-turn link: query is not supported") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("secret in turn-rest link", func(t *testing.T) {
		r := run(t, dir, clientEnv("WARREN_TUNNEL_CLIENT_TURN_REST_SECRET=x"), "tunnel-client", "turn", "--provider", "turn-rest",
			"--link", "turn-rest://u:pw@h:3478", "--peer", "127.0.0.1:1", "--listen", "127.0.0.1:0")
		r.wantCode(t, 1, "secret in link")
		if !strings.Contains(r.stderr, "secret must not be in the link") || strings.Contains(r.stderr, "pw@") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("turn-rest without secret", func(t *testing.T) {
		r := run(t, dir, clientEnv(), "tunnel-client", "turn", "--provider", "turn-rest", "--link", "turn-rest://u@h:3478", "--peer", "127.0.0.1:1")
		r.wantCode(t, 2, "no REST secret")
		if !strings.Contains(r.stderr, "turn.rest_secret") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		r := run(t, dir, clientEnv(), "tunnel-client", "turn", "--provider", "x", "--link", "x", "--peer", "127.0.0.1:1")
		r.wantCode(t, 2, "unknown provider")
		if !strings.Contains(r.stderr, `provider "x" is not registered`) {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("client without psk", func(t *testing.T) {
		r := run(t, dir, cleanEnv(t), "tunnel-client", "turn", "--provider", "generic-turn", "--link", link, "--peer", "127.0.0.1:1")
		r.wantCode(t, 2, "no psk")
		if !strings.Contains(r.stderr, "turn.psk") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("no flag takes a secret value", func(t *testing.T) {
		for _, flag := range []string{"--psk", "--turn-rest-secret"} {
			r := run(t, dir, cleanEnv(t), "tunnel-client", "turn", flag, "x")
			r.wantCode(t, 2, flag)
		}
		r := run(t, dir, cleanEnv(t), "tunnel-server", "--psk", "x")
		r.wantCode(t, 2, "tunnel-server --psk")
	})
	t.Run("server without psk or compat", func(t *testing.T) {
		r := run(t, dir, cleanEnv(t), "tunnel-server", "--connect", "127.0.0.1:1")
		r.wantCode(t, 2, "server without psk")
		if !strings.Contains(r.stderr, "psk") || !strings.Contains(r.stderr, "compat_unauthenticated") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("compat server warns and serves a prototype-profile client", func(t *testing.T) {
		srv, peer := startTunnelServer(t, cleanEnv(t), lab.EchoUDP, "--compat-unauthenticated")
		srv.stderr.wait(t, regexpOf(`compat_unauthenticated is on`), 10*time.Second)
		// The client's compat profile is exactly the prototype's (docs/protocols/turn-overlay.md §2.2): the
		// stand-in for a vk-turn-proxy client.
		cli := start(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK="+link), "tunnel-client", "turn", "--provider", "generic-turn",
			"--peer", peer, "--listen", "127.0.0.1:0", "--compat-unauthenticated")
		local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
		c, _ := net.Dial("udp4", local)
		defer c.Close()
		udpEcho(t, c, []byte("compat-echo"))
	})
	t.Run("psk-only server refuses a compat client", func(t *testing.T) {
		_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), lab.EchoUDP)
		r := run(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_LINK="+link), "tunnel-client", "turn", "--provider", "generic-turn",
			"--peer", peer, "--listen", "127.0.0.1:0", "--compat-unauthenticated", "--handshake-timeout", "3s")
		r.wantCode(t, 1, "compat client vs psk server")
		if !strings.Contains(r.stderr, "client runtime failed stage=dtls_handshake") {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("psk mismatch fails at dtls_handshake", func(t *testing.T) {
		_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+newKey(t)), lab.EchoUDP)
		r := run(t, dir, clientEnv("WARREN_TUNNEL_CLIENT_TURN_LINK="+link), "tunnel-client", "turn", "--provider", "generic-turn",
			"--peer", peer, "--listen", "127.0.0.1:0", "--handshake-timeout", "3s")
		r.wantCode(t, 1, "psk mismatch")
		if !strings.Contains(r.stderr, "client runtime failed stage=dtls_handshake") || strings.Contains(r.stderr, key) {
			t.Errorf("stderr: %s", r.stderr)
		}
	})
	t.Run("providers", func(t *testing.T) {
		r := run(t, dir, cleanEnv(t), "tunnel-client", "turn", "providers")
		r.wantCode(t, 0, "providers")
		if r.stdout != "generic-turn\nturn-rest\nvk\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		r = run(t, dir, cleanEnv(t), "tunnel-client", "turn", "--list-providers")
		r.wantCode(t, 0, "--list-providers")
	})
}

// coturn, when installed (CI installs it): docs/protocols/turn-overlay.md §5's command lines on free ports.

// needCoturn returns coturn's turnserver, skipping the test without it
// (failing under WARREN_REQUIRE_TOOLS=1, see needtool).
func needCoturn(t *testing.T) string {
	t.Helper()
	return needtool.Path(t, "turnserver", "apt-get install coturn")
}

func startCoturn(t *testing.T, auth ...string) string {
	t.Helper()
	bin := needCoturn(t)
	port := freePort(t)
	dir := t.TempDir()
	minPort := 49152 + (port%100*100)%15000
	args := append([]string{"-n", "-L", "127.0.0.1", "-E", "127.0.0.1", "-p", strconv.Itoa(port), "--allow-loopback-peers",
		"-r", "lab.local", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
		"--min-port", strconv.Itoa(minPort), "--max-port", strconv.Itoa(minPort + 99),
		"--log-file", "stdout", "--simple-log", "--pidfile", filepath.Join(dir, "coturn.pid")}, auth...)
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, cleanEnv(t)
	so, _ := cmd.StdoutPipe()
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, stdout: newLines(so), done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		// Stopped by its own PID, never by name.
		cmd.Process.Kill()
		<-d.done
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("coturn did not listen on %s:\n%s", addr, d.stdout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestTurnThroughCoturn(t *testing.T) {
	needCoturn(t)
	echo := startTURNLab(t, turnlab.Config{}) // only for its echo upstream
	key := newKey(t)
	_, peer := startTunnelServer(t, cleanEnv(t, "WARREN_TUNNEL_SERVER_PSK="+key), echo.EchoUDP)
	cases := []struct {
		name, provider, link string
		auth, env            []string
	}{
		{"static user", "generic-turn", "generic-turn://alice:secretpw@%s", []string{"--lt-cred-mech", "-u", "alice:secretpw"}, nil},
		{"turn-rest", "turn-rest", "turn-rest://alice@%s?ttl=10m", []string{"--use-auth-secret", "--static-auth-secret=s3cr3t"},
			[]string{"WARREN_TUNNEL_CLIENT_TURN_REST_SECRET=s3cr3t"}},
	}
	for _, tc := range cases {
		for _, mode := range []string{"udp", "tcp"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				addr := startCoturn(t, tc.auth...)
				env := cleanEnv(t, append([]string{"WARREN_TUNNEL_CLIENT_TURN_PSK=" + key,
					"WARREN_TUNNEL_CLIENT_TURN_LINK=" + fmt.Sprintf(tc.link, addr)}, tc.env...)...)
				cli := start(t, t.TempDir(), env, "tunnel-client", "turn", "--provider", tc.provider, "--peer", peer,
					"--listen", "127.0.0.1:0", "--mode", mode, "--connections", "2")
				local := cli.stdout.wait(t, clientReadyRE, 60*time.Second)[1]
				c, _ := net.Dial("udp4", local)
				defer c.Close()
				for i := range 5 {
					udpEcho(t, c, []byte(fmt.Sprintf("coturn-%s-%d", mode, i)))
				}
				stopDaemon(t, cli)
			})
		}
	}
}

// turn.dtls could only be true, so it is gone: the flag is unknown, and an
// old YAML or env that still sets it is told the key was removed.
func TestTurnDTLSKeyRemoved(t *testing.T) {
	dir := t.TempDir()
	r := run(t, dir, cleanEnv(t), "tunnel-client", "turn", "--help")
	r.wantCode(t, 0, "turn --help")
	if strings.Contains(r.stdout, "--dtls") {
		t.Errorf("turn --help still lists --dtls:\n%s", r.stdout)
	}
	r = run(t, dir, cleanEnv(t), "tunnel-client", "turn", "--dtls")
	r.wantCode(t, 2, "turn --dtls")
	if !strings.Contains(r.stderr, "unknown flag: --dtls") {
		t.Errorf("stderr: %s", r.stderr)
	}
	cfg := filepath.Join(dir, "old.yaml")
	os.WriteFile(cfg, []byte("turn:\n  peer: 127.0.0.1:1\n  dtls: true\n"), 0o600)
	r = run(t, dir, cleanEnv(t), "tunnel-client", "-c", cfg, "config", "validate")
	r.wantCode(t, 2, "config validate of a YAML with turn.dtls")
	if !strings.Contains(r.stderr, cfg+":3") || !strings.Contains(r.stderr, `"turn.dtls" was removed`) {
		t.Errorf("stderr: %s", r.stderr)
	}
	r = run(t, dir, cleanEnv(t, "WARREN_TUNNEL_CLIENT_TURN_DTLS=true"), "tunnel-client", "config", "validate")
	r.wantCode(t, 2, "config validate with WARREN_TUNNEL_CLIENT_TURN_DTLS")
	if !strings.Contains(r.stderr, "env WARREN_TUNNEL_CLIENT_TURN_DTLS") || !strings.Contains(r.stderr, "was removed") {
		t.Errorf("stderr: %s", r.stderr)
	}
}
