package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// proc is one started binary.
type proc struct {
	role string // relay, host, client or proxyN
	cmd  *exec.Cmd
	out  *lineBuf // stdout and stderr
	done chan struct{}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// lineBuf collects a process's output and lets a caller wait for a line.
type lineBuf struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	wake chan struct{}
}

func newLineBuf() *lineBuf { return &lineBuf{wake: make(chan struct{}, 1)} }

func (b *lineBuf) Write(p []byte) (int, error) {
	b.mu.Lock()
	// Keep the tail only: a chatty process must not grow the tool.
	if b.buf.Len() > 1<<20 {
		tail := append([]byte(nil), b.buf.Bytes()[b.buf.Len()-64<<10:]...)
		b.buf.Reset()
		b.buf.Write(tail)
	}
	b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *lineBuf) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// wait returns the first submatch of re once the output matches it.
func (b *lineBuf) wait(ctx context.Context, re *regexp.Regexp, d time.Duration) (string, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			if len(m) > 1 {
				return m[1], nil
			}
			return m[0], nil
		}
		select {
		case <-b.wake:
		case <-t.C:
			return "", fmt.Errorf("no %q within %s; output:\n%s", re, d, tail(b.String(), 2000))
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// extraEnv is more environment for a process of role; a local build may
// set it (for example to turn on a profiler).
var extraEnv = func(role string) []string { return nil }

// procs tracks every started process so that all are stopped at the end.
type procs struct {
	bin string
	dir string
	mu  sync.Mutex
	all []*proc
}

func (ps *procs) start(role, name string, env []string, args ...string) (*proc, error) {
	return ps.startPath(role, filepath.Join(ps.bin, name), env, args...)
}

// startPath starts the executable at exe (start's binaries are in ps.bin).
func (ps *procs) startPath(role, exe string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(exe, args...)
	// A clean environment: only what the binaries need, so a developer's
	// WARREN_* variables do not change the measurement.
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + ps.dir}, env...)
	cmd.Env = append(cmd.Env, extraEnv(role)...)
	cmd.Dir = ps.dir
	out := newLineBuf()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(exe), err)
	}
	p := &proc{role: role, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	return p, nil
}

// stop ends p gracefully, killing it if it takes more than 5 s.
func stopProc(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (ps *procs) stopAll() {
	ps.mu.Lock()
	all := ps.all
	ps.all = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range all {
		wg.Add(1)
		go func() { defer wg.Done(); stopProc(p) }()
	}
	wg.Wait()
}

// cpuSeconds is utime+stime of pid from /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name, which may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return (ut + st) / clkTck, nil
}

// clkTck is USER_HZ, 100 on every Linux architecture Go supports.
const clkTck = 100

// rssKiB is VmRSS of pid from /proc/<pid>/status.
func rssKiB(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(dir string) (certFile, keyFile string, pool *x509.CertPool, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "warren bench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", "", nil, err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", nil, err
	}
	if err = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool, nil
}

// relay is a started relay-server with one operator key and one tunnel.
type relay struct {
	p       *proc
	url     string
	apiKey  string
	tunnel  string
	client  *http.Client
	envTLS  []string // SSL_CERT_FILE for peers of a TLS relay
	expose  string   // host:port of the raw TCP exposure, if any
	connTok string
}

const adminKey = "bench-admin-key"

var listeningRE = regexp.MustCompile(`"msg":"relay-server listening".*"url":"(http[^"]+)"`)

type relayOpts struct {
	tls        bool
	exposePort uint16 // target port to expose raw on a new listener; 0: none
}

func (ps *procs) startRelay(ctx context.Context, name string, o relayOpts) (*relay, error) {
	dir, err := os.MkdirTemp(ps.dir, "relay-"+name+"-")
	if err != nil {
		return nil, err
	}
	r := &relay{tunnel: "bench-" + name, client: &http.Client{Timeout: 30 * time.Second}}
	yaml := fmt.Sprintf("listen: 127.0.0.1:0\nadmin_key: %s\ndata_dir: %s\nlog_format: json\n", adminKey, filepath.Join(dir, "data"))
	if o.tls {
		cert, key, pool, err := selfSigned(dir)
		if err != nil {
			return nil, err
		}
		yaml += fmt.Sprintf("tls:\n  cert_file: %s\n  key_file: %s\n", cert, key)
		r.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		r.envTLS = []string{"SSL_CERT_FILE=" + cert}
	}
	if o.exposePort != 0 {
		lp, err := freePort()
		if err != nil {
			return nil, err
		}
		r.expose = "127.0.0.1:" + strconv.Itoa(lp)
		yaml += fmt.Sprintf("tunnels:\n  expose:\n    - listen: %s\n      tunnel: %s\n      port: %d\n", r.expose, r.tunnel, o.exposePort)
	}
	cfgFile := filepath.Join(dir, "relay-server.yaml")
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		return nil, err
	}
	if r.p, err = ps.start("relay", "relay-server", nil, "--config", cfgFile); err != nil {
		return nil, err
	}
	if r.url, err = r.p.out.wait(ctx, listeningRE, 30*time.Second); err != nil {
		return nil, fmt.Errorf("relay-server %s: %w", name, err)
	}
	var k struct{ Key string }
	if err := r.do(ctx, "POST", "/api/v1/keys", "Bearer "+adminKey, `{"name":"bench","scopes":["tunnels"]}`, &k); err != nil {
		return nil, err
	}
	r.apiKey = k.Key
	q := "?api-version=" + tunnelproto.APIVersion
	if err := r.do(ctx, "PUT", "/tunnels/"+r.tunnel+q, "Bearer "+r.apiKey, `{"tunnelId":"`+r.tunnel+`"}`, nil); err != nil {
		return nil, err
	}
	var view tunnelproto.Tunnel
	if err := r.do(ctx, "GET", "/tunnels/"+r.tunnel+q+"&tokenScopes=connect", "Bearer "+r.apiKey, "", &view); err != nil {
		return nil, err
	}
	r.connTok = view.AccessTokens[tunnelproto.ScopeConnect]
	return r, nil
}

func (r *relay) do(ctx context.Context, method, path, auth, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// startHost starts tunnel-host for r's tunnel; metrics, if not empty, is
// the address of its /metrics listener.
func (ps *procs) startHost(r *relay, mode string, port uint16, metrics string) (*proc, error) {
	env := append([]string{
		"WARREN_TUNNEL_HOST_API_KEY=" + r.apiKey,
		"WARREN_TUNNEL_HOST_CONTROL_SOCKET=" + filepath.Join(ps.dir, r.tunnel+".sock"),
		"WARREN_TUNNEL_HOST_LOG_LEVEL=warn",
	}, r.envTLS...)
	if metrics != "" {
		env = append(env, "WARREN_TUNNEL_HOST_METRICS_LISTEN="+metrics)
	}
	return ps.start("host", "tunnel-host", env, "--relay", r.url, "--tunnel", r.tunnel, "--mode", mode,
		"--port", strconv.Itoa(int(port)))
}

// waitHost polls the management API until the tunnel has a host endpoint
// and the port.
func (r *relay) waitHost(ctx context.Context, h *proc, port uint16) error {
	deadline := time.Now().Add(60 * time.Second)
	q := "?api-version=" + tunnelproto.APIVersion + "&includePorts=true"
	for time.Now().Before(deadline) {
		var view tunnelproto.Tunnel
		if err := r.do(ctx, "GET", "/tunnels/"+r.tunnel+q, "Bearer "+r.apiKey, "", &view); err != nil {
			return err
		}
		if len(view.Endpoints) > 0 {
			for _, p := range view.Ports {
				if p.PortNumber == port {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("tunnel-host of %s did not connect; output:\n%s", r.tunnel, tail(h.out.String(), 2000))
}

// startClient runs tunnel-client connect mapping port to a free local port
// and returns once it is ready, with the local address. e2e asks the host
// for end-to-end encryption of every stream (--e2e).
func (ps *procs) startClient(ctx context.Context, r *relay, mode string, port uint16, e2e bool) (*proc, string, error) {
	lp, err := freePort()
	if err != nil {
		return nil, "", err
	}
	env := append([]string{"WARREN_TUNNEL_CLIENT_API_KEY=" + r.apiKey, "WARREN_TUNNEL_CLIENT_LOG_LEVEL=warn"}, r.envTLS...)
	args := []string{"connect", r.tunnel, "--relay", r.url, "--mode", mode, "--port-map", fmt.Sprintf("%d:%d", port, lp)}
	if e2e {
		args = append(args, "--e2e")
	}
	p, err := ps.start("client", "tunnel-client", env, args...)
	if err != nil {
		return nil, "", err
	}
	re := regexp.MustCompile(fmt.Sprintf(`ready %d -> (\S+)`, port))
	addr, err := p.out.wait(ctx, re, 60*time.Second)
	if err != nil {
		return nil, "", fmt.Errorf("tunnel-client %s: %w", r.tunnel, err)
	}
	return p, addr, nil
}

// waitReachable retries until a connection through addr echoes, for the
// paths without a client that reports readiness (raw TCP exposure).
func waitReachable(ctx context.Context, addr string) error {
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		var c net.Conn
		if c, err = openEcho(addr); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not reachable: %w", addr, err)
}

// waitGET retries until url answers 200.
func waitGET(ctx context.Context, c *http.Client, url string, h http.Header) error {
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, _ := http.NewRequestWithContext(ctx, "HEAD", url, nil)
		req.Header = h
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("web forwarding not ready: " + last)
}
