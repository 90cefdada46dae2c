package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/warrenhq/warren/internal/needtool"
)

// User is the superuser the server is initialised with.
const User = "warren"

const install = "apt-get install postgresql"

// Server is a PostgreSQL server in a temporary directory.
type Server struct {
	bin      string // directory holding initdb and postgres
	dir      string // everything: data, log; removed by Close
	data     string
	port     int
	password string
	cred     *syscall.Credential // nil: run as ourselves
	uid, gid int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	dbs  atomic.Int64
}

// binDir finds initdb and postgres: on PATH, else in the newest
// /usr/lib/postgresql/<version>/bin.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return version(matches[i]) > version(matches[j]) })
	for _, m := range matches {
		dir := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("initdb and postgres not found on PATH or in /usr/lib/postgresql/*/bin")
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// binOrSkip returns the binary directory, or skips (fails when tools are
// required) the test.
func binOrSkip(tb testing.TB) string {
	tb.Helper()
	dir, err := binDir()
	if err != nil {
		needtool.Any(tb, []string{"initdb"}, install+"; "+err.Error())
	}
	return dir
}

// runAs picks who runs PostgreSQL: ourselves, or an unprivileged user when
// we are root.
func runAs() (cred *syscall.Credential, uid, gid int, err error) {
	if os.Geteuid() != 0 {
		return nil, os.Geteuid(), os.Getegid(), nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if uid == 0 {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, uid, gid, nil
	}
	return nil, 0, 0, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as")
}

// baseDir is a directory every user can traverse, so the unprivileged
// server can reach its data directory under it.
func baseDir() string {
	for _, d := range []string{os.TempDir(), "/tmp", "/var/tmp"} {
		if traversable(d) {
			return d
		}
	}
	return "/tmp"
}

func traversable(dir string) bool {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		if p == "/" {
			return true
		}
	}
}

// Start initialises and starts a server. Close stops it and removes its
// files.
func Start(bin string) (s *Server, err error) {
	s = &Server{bin: bin}
	if s.cred, s.uid, s.gid, err = runAs(); err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp(baseDir(), "warren-pgtest-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.data = filepath.Join(s.dir, "data")
	pw := make([]byte, 16)
	rand.Read(pw)
	s.password = hex.EncodeToString(pw)
	pwfile := filepath.Join(s.dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := s.chown(s.dir, pwfile); err != nil {
		return nil, err
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "-D", s.data, "-U", User, "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	os.Remove(pwfile)
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		err = s.Restart()
		if err == nil || attempt == 3 || !strings.Contains(err.Error(), "could not bind") {
			return s, err
		}
	}
}

func (s *Server) chown(paths ...string) error {
	if s.cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, s.uid, s.gid); err != nil {
			return err
		}
	}
	return nil
}

func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C", "LC_ALL=C", "HOME=" + s.dir, "TZ=UTC"}
	// Should the test binary die, the server goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts the server on its data directory and port after Stop
// (Start does it the first time), and waits until it accepts connections.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("pgtest: server is running")
	}
	logPath := filepath.Join(s.dir, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.data, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "log_min_messages=warning")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			c.Close(ctx)
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited during start: %s", out)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("postgres did not accept connections: %w", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop shuts the server down (fast shutdown: sessions are disconnected).
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
	return nil
}

// Close stops the server and removes its files.
func (s *Server) Close() error {
	err := s.Stop()
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Password is User's password.
func (s *Server) Password() string { return s.password }

// DSN is the URL of database db as User, password included.
func (s *Server) DSN(db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(User, s.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)), Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDB creates a new, empty database and returns its DSN.
func (s *Server) CreateDB(ctx context.Context) (name, dsn string, err error) {
	name = fmt.Sprintf("test_%d", s.dbs.Add(1))
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return "", "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", err
	}
	return name, s.DSN(name), nil
}

// DropDB drops a database, disconnecting its sessions.
func (s *Server) DropDB(ctx context.Context, name string) error {
	c, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// New starts a private server for one test, closed when it ends.
func New(t testing.TB) *Server {
	t.Helper()
	s, err := Start(binOrSkip(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// DSN returns the DSN of a fresh database on the package's shared server,
// started on first use; the database is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	bin := binOrSkip(t)
	shared.once.Do(func() { shared.s, shared.err = Start(bin) })
	if shared.err != nil {
		t.Fatalf("pgtest: %v", shared.err)
	}
	name, dsn, err := shared.s.CreateDB(context.Background())
	if err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := shared.s.DropDB(ctx, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dsn
}

// Main runs a package's tests, stops the shared server, then fails the run
// if a goroutine outlived the tests (as goleak.VerifyTestMain does).
func Main(m *testing.M, opts ...goleak.Option) {
	code := m.Run()
	if shared.s != nil {
		if err := shared.s.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	if code == 0 {
		if err := goleak.Find(opts...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
