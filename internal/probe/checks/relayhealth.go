package checks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/probe"
)

type relayHealthParams struct {
	URL           string `yaml:"url"`            // relay-server base URL (required)
	CAFile        string `yaml:"ca_file"`        // PEM bundle to trust; default the system roots
	Ready         bool   `yaml:"ready"`          // also require GET /readyz 200; default true
	ExpectVersion string `yaml:"expect_version"` // WARNING when the relay reports another version; default none
}

func relayHealthKind() probe.Kind {
	return probe.Kind{
		Name:    "relay_health",
		Summary: "GET /healthz (status, version) and /readyz of a relay-server",
		Example: `- name: relay
  kind: relay_health
  url: https://relay.example
  ready: true            # also GET /readyz
  expect_version: ""     # WARNING if the relay reports another version
  warning: 500ms
  critical: 2s`,
		Params: func() any { return &relayHealthParams{Ready: true} },
		New: func(p any, env probe.Env) (probe.Check, error) {
			c := &relayHealth{p: *p.(*relayHealthParams)}
			u, err := relayTarget{URL: c.p.URL, CAFile: c.p.CAFile}.validate()
			if err != nil {
				return nil, err
			}
			c.base = strings.TrimRight(u.String(), "/")
			if c.hc, err = httpClient(c.p.CAFile); err != nil {
				return nil, err
			}
			return c, nil
		},
	}
}

type relayHealth struct {
	p    relayHealthParams
	base string
	hc   *http.Client
}

type healthBody struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Commit  string `json:"commit"`
}

func (c *relayHealth) Run(ctx context.Context) probe.Result {
	var res probe.Result
	end := res.Begin("healthz")
	code, hdr, body, err := httpGet(ctx, c.hc, c.base+"/healthz", nil)
	end()
	if err != nil {
		return res.Fail(stageOf(err, "healthz"), err)
	}
	if code != http.StatusOK {
		return res.Failf("healthz", "GET /healthz: %s", statusText(code, body))
	}
	var hb healthBody
	if err := json.Unmarshal(body, &hb); err != nil && !strings.Contains(hdr.Get("Content-Type"), "json") {
		// Not a warren relay (or a proxy's page); still healthy by status.
		hb = healthBody{}
	} else if err != nil {
		return res.Failf("healthz", "GET /healthz: body is not the expected JSON: %v", err)
	}
	if hb.Status != "" && hb.Status != "ok" {
		return res.Failf("healthz", "GET /healthz: status %q", hb.Status)
	}
	version := hb.Version
	if version == "" {
		version = hdr.Get("X-Warren-Version")
	}
	if version != "" {
		res.Detail("version", version)
	}
	if hb.Commit != "" {
		res.Detail("commit", hb.Commit)
	}
	if c.p.Ready {
		end := res.Begin("readyz")
		code, _, body, err := httpGet(ctx, c.hc, c.base+"/readyz", nil)
		end()
		if err != nil {
			return res.Fail(stageOf(err, "readyz"), err)
		}
		if code != http.StatusOK {
			return res.Failf("readyz", "GET /readyz: %s", statusText(code, body))
		}
	}
	what := "relay-server"
	if version != "" {
		what += " " + version
	}
	res.Message = fmt.Sprintf("%s healthy", what)
	if c.p.Ready {
		res.Message += " and ready"
	}
	res.Message += " in " + ms(total(res.Stages))
	if c.p.ExpectVersion != "" && version != c.p.ExpectVersion {
		res.Status = probe.Warning
		if version == "" {
			version = "no version"
		}
		res.Message = fmt.Sprintf("%s, but reports %s, expected %s", res.Message, version, c.p.ExpectVersion)
	}
	return res
}

func total(st []probe.Stage) time.Duration {
	var d time.Duration
	for _, s := range st {
		d += s.Duration
	}
	return d
}
