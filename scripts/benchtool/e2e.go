package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// e2eCheck proves that a V2 path with tunnel-client --e2e really
// end-to-end encrypts its streams: the host's /metrics must count every
// forwarded connection as an E2E stream (so the figures of an unencrypted
// fallback are never reported as E2E ones) and name the negotiated cipher.
type e2eCheck struct {
	metrics string // host:port of the tunnel-host's /metrics
	client  *proc
}

// e2eStats is what the host's metrics say about its streams.
type e2eStats struct {
	forwarded float64            // warren_tunnel_host_forwarded_connections_total
	e2e       float64            // sum of warren_tunnel_host_e2e_streams_total
	ciphers   map[string]float64 // e2e streams by cipher
}

var e2eLineRE = regexp.MustCompile(`^warren_tunnel_host_e2e_streams_total\{cipher="([^"]*)"\} (\S+)$`)

func (c *e2eCheck) stats(ctx context.Context) (e2eStats, error) {
	st := e2eStats{ciphers: map[string]float64{}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.metrics+"/metrics", nil)
	if err != nil {
		return st, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("tunnel-host metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return st, fmt.Errorf("tunnel-host metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "warren_tunnel_host_forwarded_connections_total "); ok {
			if st.forwarded, err = strconv.ParseFloat(v, 64); err != nil {
				return st, fmt.Errorf("tunnel-host metrics: %q: %w", line, err)
			}
		}
		if m := e2eLineRE.FindStringSubmatch(line); m != nil {
			n, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				return st, fmt.Errorf("tunnel-host metrics: %q: %w", line, err)
			}
			st.ciphers[m[1]] += n
			st.e2e += n
		}
	}
	return st, sc.Err()
}

// verify fails unless every stream the host forwarded so far (at least
// one) was E2E-encrypted, and returns a line saying so.
func (c *e2eCheck) verify(ctx context.Context, name string) (string, error) {
	st, err := c.stats(ctx)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if strings.Contains(c.client.out.String(), "did not enable end-to-end encryption") {
		return "", fmt.Errorf("%s: tunnel-client says the host did not enable end-to-end encryption:\n%s", name, tail(c.client.out.String(), 2000))
	}
	if st.forwarded < 1 || st.e2e != st.forwarded {
		return "", fmt.Errorf("%s: the host forwarded %.0f connections, %.0f of them E2E-encrypted: refusing to report its figures as E2E ones", name, st.forwarded, st.e2e)
	}
	var cs []string
	for k, v := range st.ciphers {
		cs = append(cs, fmt.Sprintf("%s ×%.0f", k, v))
	}
	sort.Strings(cs)
	return fmt.Sprintf("%s: the host E2E-encrypted all %.0f streams it forwarded (inner SSH cipher host→client: %s)", name, st.e2e, strings.Join(cs, ", ")), nil
}
