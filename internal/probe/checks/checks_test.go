package checks

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/relayserver"
	"github.com/warrenhq/warren/internal/store/sqlite"
	"go.yaml.in/yaml/v3"
)

// startRelay serves a real relay (a SQLite store in a temporary
// directory; the admin key is the credential; tickets on) on loopback.
func startRelay(t *testing.T) string {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "relay.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := relayserver.New(relayserver.Config{AdminKey: "adm-key-0123", Store: db, PublicURL: "http://" + ln.Addr().String(),
		ShutdownTimeout: time.Second}, nil)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + ln.Addr().String()
	// Serve marks the relay ready once it is serving.
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("relay not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func closedURL(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// build builds one check of kind from YAML keys, as probe run does.
func build(t *testing.T, reg *probe.Registry, red *redact.Redactor, doc string) (probe.Check, error) {
	t.Helper()
	var s struct {
		Checks probe.Specs `yaml:"checks"`
	}
	if err := yaml.Unmarshal([]byte("checks:\n"+doc), &s); err != nil {
		return nil, err
	}
	built, err := probe.Build(s.Checks, probe.BuildOptions{Registry: reg, Env: probe.Env{Redactor: red},
		Secrets: probe.SecretSource{LookupEnv: func(string) (string, bool) { return "", false }}})
	if err != nil {
		return nil, err
	}
	return built[0].Check, nil
}

func registry(t *testing.T) *probe.Registry {
	t.Helper()
	// Specs decoding looks kinds up in probe.Default.
	if _, ok := probe.Default.Lookup("relay_health"); !ok {
		if err := Register(probe.Default); err != nil {
			t.Fatal(err)
		}
	}
	return probe.Default
}

func runCheck(t *testing.T, c probe.Check) probe.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return c.Run(ctx)
}

func TestRelayHealthAndTicket(t *testing.T) {
	reg := registry(t)
	url := startRelay(t)
	down := closedURL(t)
	notReady := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, `{"status":"not ready"}`, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"status":"ok","version":"1.2.3"}`))
	}))
	defer notReady.Close()

	cases := []struct {
		name, doc string
		status    probe.Status
		stage     string
		msg       string
	}{
		{"healthy", "  - {name: a, kind: relay_health, url: '" + url + "'}", probe.OK, "", "relay-server dev healthy and ready"},
		{"version", "  - {name: a, kind: relay_health, url: '" + url + "', expect_version: v9}", probe.Warning, "", "reports dev, expected v9"},
		{"not ready", "  - {name: a, kind: relay_health, url: '" + notReady.URL + "'}", probe.Critical, "readyz", "HTTP 503"},
		{"no readyz", "  - {name: a, kind: relay_health, url: '" + notReady.URL + "', ready: false}", probe.OK, "", "relay-server 1.2.3 healthy in"},
		{"down", "  - {name: a, kind: relay_health, url: '" + down + "'}", probe.Critical, "connect", "connection refused"},
		{"ticket", "  - {name: a, kind: ticket, url: '" + url + "', api_key: adm-key-0123, bytes: 300000}", probe.OK, "", "300000 bytes PUT and GET, sha256 matches"},
		{"ticket key", "  - {name: a, kind: ticket, url: '" + url + "', api_key: wrong-key-0123}", probe.Critical, "mint", "HTTP 401"},
		{"ticket down", "  - {name: a, kind: ticket, url: '" + down + "', api_key: adm-key-0123}", probe.Critical, "connect", "connection refused"},
		{"ws no tunnel", "  - {name: a, kind: relay_ws, url: '" + url + "', tunnel: t, token: tok-0123}", probe.Critical, "upgrade", "HTTP 4"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			red := redact.NewRedactor()
			chk, err := build(t, reg, red, c.doc)
			if err != nil {
				t.Fatal(err)
			}
			res := runCheck(t, chk)
			st := res.Status
			if res.Err != nil && st == probe.OK {
				st = probe.Critical
			}
			text := res.Message
			if res.Err != nil {
				text += " " + res.Err.Error()
			}
			if st != c.status || res.Stage != c.stage || !strings.Contains(text, c.msg) {
				t.Fatalf("got %s stage %q %q, want %s stage %q containing %q", st, res.Stage, text, c.status, c.stage, c.msg)
			}
			if len(res.Stages) == 0 {
				t.Error("no stages measured")
			}
			if strings.Contains(c.name, "ticket") && c.status == probe.OK {
				// The configured key is known to the redactor.
				if red.Redact("adm-key-0123") != "<redacted:api_key>" {
					t.Errorf("redactor: %q", red.Redact("adm-key-0123"))
				}
			}
		})
	}
}

func TestParamErrors(t *testing.T) {
	reg := registry(t)
	cases := []struct{ doc, want string }{
		{"  - {name: a, kind: relay_health}", `key "url": missing`},
		{"  - {name: a, kind: relay_health, url: 'ftp://x'}", `key "url": expected an http:// or https:// URL`},
		{"  - {name: a, kind: relay_health, url: 'http://x', ca_file: /nonexistent}", `key "ca_file"`},
		{"  - {name: a, kind: relay_ws, url: 'http://x'}", `key "tunnel": missing`},
		{"  - {name: a, kind: relay_ws, url: 'http://x', tunnel: t}", `key "token": no credential`},
		{"  - {name: a, kind: relay_ws, url: 'http://x', tunnel: t, token: abc, mode: v3}", `key "mode": expected auto, v2 or v1`},
		{"  - {name: a, kind: tunnel, url: 'http://x', tunnel: t, token: abc, port: 70000}", `key "port": expected a port number`},
		{"  - {name: a, kind: tunnel, url: 'http://x', tunnel: t, token: abc, port: 22, port_wait: 0s}", `key "port_wait"`},
		{"  - {name: a, kind: ticket, url: 'http://x'}", `key "api_key": missing`},
		{"  - {name: a, kind: ticket, url: 'http://x', api_key: k, ttl: 1500ms}", `key "ttl": expected whole seconds`},
		{"  - {name: a, kind: ticket, url: 'http://x', api_key: k, bytes: 0}", `key "bytes"`},
	}
	for _, c := range cases {
		_, err := build(t, reg, redact.NewRedactor(), c.doc)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
		var se *probe.SpecError
		if !errors.As(err, &se) || se.Name != "a" {
			t.Errorf("%s: not a SpecError naming the check: %#v", c.doc, err)
		}
	}
}

func TestErrCapture(t *testing.T) {
	c := newErrCapture(nil)
	l := slog.New(c)
	l.Info("ignored", "err", "not kept")
	l.With("tunnel", "x").Warn("relay connection failed; retrying", "err", errors.New("dial tcp: refused"))
	if got := c.lastErr(); got != "relay connection failed; retrying: dial tcp: refused" {
		t.Fatalf("lastErr %q", got)
	}
}
