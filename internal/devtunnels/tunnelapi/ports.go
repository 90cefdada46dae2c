package tunnelapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

func (a *API) listPorts(c *call, ref string) error {
	t, err := a.access(c, ref, scopesRead)
	if err != nil {
		return err
	}
	ports, err := a.store.ListPorts(c.r.Context(), t.ID)
	if err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q", t.ID))
	}
	out := tunnelproto.TunnelPortList{Value: make([]tunnelproto.TunnelPort, 0, len(ports))}
	for _, p := range ports {
		out.Value = append(out.Value, a.portJSON(p))
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}

// portPath parses the {n} of a port route.
func portPath(s string) (uint16, error) {
	n, err := parsePort(s)
	if err != nil {
		return 0, badField("portNumber", "%s", err)
	}
	return n, nil
}

// accessPort authorises a port route (see access), then parses its {n}: a
// caller without access is refused whatever the number.
func (a *API) accessPort(c *call, ref, num string, scopes []string) (*store.Tunnel, uint16, error) {
	t, err := a.access(c, ref, scopes)
	if err != nil {
		return nil, 0, err
	}
	n, err := portPath(num)
	if err != nil {
		return nil, 0, err
	}
	return t, n, nil
}

func (a *API) getPort(c *call, ref, num string) error {
	t, n, err := a.accessPort(c, ref, num, scopesRead)
	if err != nil {
		return err
	}
	p, err := a.store.GetPort(c.r.Context(), t.ID, n)
	if err != nil {
		return storeError(err, fmt.Sprintf("port %d of tunnel %q", n, t.ID))
	}
	writeJSON(c.w, http.StatusOK, a.portJSON(p))
	return nil
}

// putPort creates or updates a port. "If-None-Match: *" (or "If-Not-Match")
// only creates (409 if the port exists), "If-Match: *" only updates (404 if
// missing). An update applies only the fields present in the body.
func (a *API) putPort(c *call, ref, num string) error {
	createOnly := c.r.Header.Get("If-None-Match") == "*" || c.r.Header.Get("If-Not-Match") == "*"
	updateOnly := c.r.Header.Get("If-Match") == "*"
	if createOnly && updateOnly {
		return &apiError{status: http.StatusBadRequest, detail: "If-Match and If-None-Match exclude each other"}
	}
	t, n, err := a.accessPort(c, ref, num, scopesPortsWrite)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	pp, err := decodePort(body)
	if err != nil {
		return err
	}
	if pp.number != nil && *pp.number != n {
		return badField("portNumber", "body portNumber %d differs from %d in the path", *pp.number, n)
	}
	if pp.tunnelID != nil && *pp.tunnelID != "" && *pp.tunnelID != t.ID {
		return badField("tunnelId", "body tunnelId %q is not the tunnel's id %q", *pp.tunnelID, t.ID)
	}
	ctx := c.r.Context()
	what := fmt.Sprintf("port %d of tunnel %q", n, t.ID)
	now := a.now()
	old, err := a.store.GetPort(ctx, t.ID, n)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if updateOnly {
			return notFound(what + " not found")
		}
		p := &store.Port{TunnelID: t.ID, Number: n, Created: now, Updated: now}
		pp.apply(p)
		if err := a.store.CreatePort(ctx, p); err != nil {
			return storeError(err, what)
		}
		writeJSON(c.w, http.StatusOK, a.portJSON(p))
		return nil
	case err != nil:
		return fmt.Errorf("get %s: %w", what, err)
	case createOnly:
		return conflict(what + " already exists")
	}
	p := old.Clone()
	pp.apply(p)
	p.Updated = now
	if err := a.store.UpdatePort(ctx, p); err != nil {
		return storeError(err, what)
	}
	writeJSON(c.w, http.StatusOK, a.portJSON(p))
	return nil
}

func (a *API) deletePort(c *call, ref, num string) error {
	t, n, err := a.accessPort(c, ref, num, scopesPortsWrite)
	if err != nil {
		return err
	}
	if err := a.store.DeletePort(c.r.Context(), t.ID, n); err != nil {
		return storeError(err, fmt.Sprintf("port %d of tunnel %q", n, t.ID))
	}
	writeEmpty(c.w)
	return nil
}

// portJSON renders a port; portForwardingUris is never null.
func (a *API) portJSON(p *store.Port) tunnelproto.TunnelPort {
	uris := []string{}
	if a.portURIs != nil {
		uris = append(uris, a.portURIs(p.TunnelID, p.Number)...)
	}
	return tunnelproto.TunnelPort{
		ClusterID:          a.clusterID,
		TunnelID:           p.TunnelID,
		PortNumber:         p.Number,
		Name:               p.Name,
		Description:        p.Description,
		Labels:             p.Labels,
		Protocol:           p.Protocol,
		IsDefault:          p.IsDefault,
		AccessControl:      p.AccessControl,
		Options:            p.Options,
		SSHUser:            p.SSHUser,
		PortForwardingURIs: uris,
	}
}
