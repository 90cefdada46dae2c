package checks

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/probe"
	"github.com/warrenhq/warren/internal/redact"
)

type ticketParams struct {
	URL       string        `yaml:"url"`       // relay-server base URL (required)
	CAFile    string        `yaml:"ca_file"`   // PEM bundle to trust; default the system roots
	APIKey    probe.Secret  `yaml:"api_key"`   // API key with the tickets scope, or the admin key (required)
	Workspace string        `yaml:"workspace"` // workspace the ticket counts against; default "probe"
	Source    string        `yaml:"source"`    // source_id of the ticket; default "probe"
	Dest      string        `yaml:"dest"`      // dest_id of the ticket; default "probe"
	Bytes     int           `yaml:"bytes"`     // random bytes sent; default 65536
	TTL       time.Duration `yaml:"ttl"`       // ticket pairing deadline (whole seconds); default 60s
}

func ticketKind() probe.Kind {
	return probe.Kind{
		Name:    "ticket",
		Summary: "ticket relay round trip: mint with an API key, PUT random bytes, GET them, compare SHA-256",
		Example: `- name: ticket-relay
  kind: ticket
  url: https://relay.example
  api_key_env: PROBE_TICKETS_KEY   # or api_key_file
  workspace: probe
  bytes: 65536
  ttl: 60s
  critical: 3s`,
		Params: func() any {
			return &ticketParams{Workspace: "probe", Source: "probe", Dest: "probe", Bytes: 64 << 10, TTL: time.Minute}
		},
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &ticketCheck{p: *p.(*ticketParams), red: env.Redactor}
			u, err := relayTarget{URL: c.p.URL, CAFile: c.p.CAFile}.validate()
			if err != nil {
				return nil, err
			}
			c.base = strings.TrimRight(u.String(), "/")
			switch {
			case !c.p.APIKey.IsSet():
				return nil, probe.ParamErrorf("api_key", "missing: an API key with the tickets scope (api_key_file or api_key_env)")
			case c.p.Bytes < 1 || c.p.Bytes > 64<<20:
				return nil, probe.ParamErrorf("bytes", "expected 1 to 67108864, got %d", c.p.Bytes)
			case c.p.TTL < time.Second || c.p.TTL%time.Second != 0:
				return nil, probe.ParamErrorf("ttl", "expected whole seconds, at least 1s, got %s", c.p.TTL)
			case c.p.Workspace == "" || c.p.Source == "" || c.p.Dest == "":
				return nil, probe.ParamErrorf("workspace", "workspace, source and dest must not be empty")
			}
			if c.hc, err = httpClient(c.p.CAFile); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type ticketCheck struct {
	p    ticketParams
	base string
	hc   *http.Client
	red  *redact.Redactor
}

type mintAnswer struct {
	Ticket      string `json:"ticket"`
	UploadURL   string `json:"upload_url"`
	DownloadURL string `json:"download_url"`
	Error       string `json:"error"`
}

type putAnswer struct {
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Error  string `json:"error"`
}

func (c *ticketCheck) Run(ctx context.Context) probe.Result {
	var res probe.Result
	end := res.Begin("mint")
	m, err := c.mint(ctx)
	end()
	if err != nil {
		return res.Fail(stageOf(err, "mint"), err)
	}
	data := make([]byte, c.p.Bytes)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	end = res.Begin("transfer")
	type got struct {
		sum string
		n   int64
		err error
	}
	getc := make(chan got, 1)
	// A failed PUT leaves the GET waiting for a partner until the ticket
	// expires; it is cancelled instead.
	getCtx, cancelGet := context.WithCancel(ctx)
	defer cancelGet()
	go func() {
		req, _ := http.NewRequestWithContext(getCtx, http.MethodGet, c.abs(m.DownloadURL), nil)
		req.Header.Set("Authorization", "Bearer "+m.Ticket)
		resp, err := c.hc.Do(req)
		if err != nil {
			getc <- got{err: fmt.Errorf("GET: %w", unwrapURLError(err))}
			return
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			getc <- got{err: fmt.Errorf("GET: %s", statusText(resp.StatusCode, body))}
			return
		}
		h := sha256.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil {
			getc <- got{err: fmt.Errorf("GET after %d bytes: %w", n, err)}
			return
		}
		getc <- got{sum: hex.EncodeToString(h.Sum(nil)), n: n}
	}()
	put, putErr := c.put(ctx, c.abs(m.UploadURL), m.Ticket, data)
	if putErr != nil {
		cancelGet()
	}
	g := <-getc
	end()
	switch {
	case putErr != nil:
		return res.Fail(stageOf(putErr, "transfer"), putErr)
	case g.err != nil:
		return res.Fail(stageOf(g.err, "transfer"), g.err)
	case g.n != int64(len(data)):
		return res.Failf("transfer", "GET returned %d bytes, %d were sent", g.n, len(data))
	case g.sum != want:
		return res.Failf("transfer", "GET returned different bytes: sha256 %s, sent %s", g.sum, want)
	case put.SHA256 != "" && put.SHA256 != want:
		return res.Failf("transfer", "the relay reports sha256 %s for the upload, sent %s", put.SHA256, want)
	}
	res.Detail("bytes", fmt.Sprint(len(data)))
	res.Detail("sha256", want)
	res.Message = fmt.Sprintf("ticket relay: %d bytes PUT and GET, sha256 matches, in %s", len(data), ms(total(res.Stages)))
	return res
}

func (c *ticketCheck) abs(u string) string {
	if strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://") {
		return u
	}
	return c.base + u
}

func (c *ticketCheck) mint(ctx context.Context) (*mintAnswer, error) {
	body, _ := json.Marshal(map[string]any{"workspace_id": c.p.Workspace, "source_id": c.p.Source,
		"dest_id": c.p.Dest, "ttl_seconds": int64(c.p.TTL / time.Second), "max_bytes": c.p.Bytes})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/tickets", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.p.APIKey.Value)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		hint := ""
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			hint = " (unknown or revoked API key)"
		case http.StatusForbidden:
			hint = " (the API key lacks the tickets scope)"
		case http.StatusNotFound:
			hint = " (is the ticket relay enabled? tickets.enabled)"
		}
		return nil, fmt.Errorf("mint: %s%s", statusText(resp.StatusCode, raw), hint)
	}
	var m mintAnswer
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	if m.Ticket == "" || m.UploadURL == "" || m.DownloadURL == "" {
		return nil, errors.New("mint: the answer lacks ticket, upload_url or download_url")
	}
	// The ticket is a bearer credential: never in output from here on.
	c.red.Add("ticket", m.Ticket)
	return &m, nil
}

func (c *ticketCheck) put(ctx context.Context, u, ticket string, data []byte) (*putAnswer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+ticket)
	req.ContentLength = int64(len(data))
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("PUT: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("PUT: %s", statusText(resp.StatusCode, raw))
	}
	var p putAnswer
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("PUT: %w", err)
	}
	return &p, nil
}
