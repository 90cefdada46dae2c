package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/probe"
)

// Register adds the relay, tunnel, ticket, wing and TURN overlay kinds to reg.
func Register(reg *probe.Registry) error {
	for _, k := range []probe.Kind{relayHealthKind(), relayWSKind(), tunnelKind(), ticketKind(),
		wingPresenceKind(), wingSessionKind(), turnAllocateKind(), dtlsHandshakeKind(), overlayEchoKind()} {
		if err := reg.Register(k); err != nil {
			return err
		}
	}
	return nil
}

// relayTarget is the parameters every relay check shares.
type relayTarget struct {
	URL    string // relay-server base URL
	CAFile string // PEM bundle to trust instead of the system roots; "" system roots
}

func (t relayTarget) validate() (*url.URL, error) {
	if t.URL == "" {
		return nil, probe.ParamErrorf("url", "missing: the relay-server base URL, e.g. https://relay.example")
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, probe.ParamErrorf("url", "expected an http:// or https:// URL, got %q", t.URL)
	}
	return u, nil
}

// httpClient trusts caFile when given. The CA file is read when the check
// is built, so a bad path is a configuration error.
func httpClient(caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = true // each run measures a fresh connection
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, probe.ParamErrorf("ca_file", "%w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, probe.ParamErrorf("ca_file", "no PEM certificates in %s", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// stageOf names the stage a network error happened in, so a DNS failure
// and a refused connection read differently from an HTTP error.
func stageOf(err error, fallback string) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return "dns"
	case errors.As(err, &op) && op.Op == "dial":
		return "connect"
	case errors.Is(err, context.DeadlineExceeded):
		return fallback
	}
	var tlsErr *tls.CertificateVerificationError
	if errors.As(err, &tlsErr) {
		return "tls"
	}
	return fallback
}

// httpGet does a GET and returns the status and up to 64 KiB of body.
func httpGet(ctx context.Context, hc *http.Client, u string, hdr http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, unwrapURLError(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, resp.Header, body, err
}

// unwrapURLError keeps the method and URL in the text but lets errors.As
// see the net error beneath (url.Error already unwraps; this shortens the
// text of a timeout).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Timeout() {
		return fmt.Errorf("%s %s: %w", ue.Op, ue.URL, context.DeadlineExceeded)
	}
	return err
}

// statusText is "HTTP 401 Unauthorized: <first line of the body>".
func statusText(code int, body []byte) string {
	s := fmt.Sprintf("HTTP %d %s", code, http.StatusText(code))
	b := strings.TrimSpace(string(body))
	if i := strings.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 200 {
		b = b[:200] + "..."
	}
	if b != "" {
		s += ": " + b
	}
	return s
}

// ms formats a duration for messages.
func ms(d time.Duration) string {
	return d.Round(100 * time.Microsecond).String()
}
