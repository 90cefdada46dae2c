package wing

import (
	"fmt"
	"net/netip"

	"github.com/warrenhq/warren/internal/cli"
	"github.com/warrenhq/warren/internal/wing/wingclient"
)

// validateDirect checks the direct-session keys (serve.direct_networks,
// attach.direct, attach.direct_networks).
func (c *Config) validateDirect() error {
	if _, err := wingclient.ParseDirectMode(c.Attach.Direct); err != nil {
		return cli.FieldErrorf("attach.direct", "%w", err)
	}
	for key, list := range map[string][]string{"serve.direct_networks": c.Serve.DirectNetworks, "attach.direct_networks": c.Attach.DirectNetworks} {
		for i, s := range list {
			if _, err := netip.ParsePrefix(s); err != nil {
				return cli.FieldErrorf(fmt.Sprintf("%s[%d]", key, i), "expected a CIDR prefix such as 192.168.0.0/16 or 127.0.0.0/8, got %q", s)
			}
		}
	}
	return nil
}

// mustPrefixes parses prefixes validateDirect has checked.
func mustPrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

func directOptions(cfg *Config) wingclient.DirectOptions {
	mode, _ := wingclient.ParseDirectMode(cfg.Attach.Direct)
	return wingclient.DirectOptions{Mode: mode, RelayOnly: cfg.Attach.DirectRelayOnly, Networks: mustPrefixes(cfg.Attach.DirectNetworks)}
}
