package tunnelapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// RegionName is the single region GET /tunnels reports.
const RegionName = "local"

func (a *API) listTunnels(c *call) error {
	if err := a.authenticate(c); err != nil {
		return err
	}
	if !c.operator() {
		return forbidden("only the operator may list tunnels")
	}
	ctx := c.r.Context()
	ts, err := a.store.ListTunnels(ctx)
	if err != nil {
		return fmt.Errorf("list tunnels: %w", err)
	}
	includePorts := flag(c, "includePorts")
	out := make([]tunnelproto.Tunnel, 0, len(ts))
	for _, t := range ts {
		tj, err := a.tunnelJSON(ctx, t, includePorts)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out = append(out, *tj)
	}
	writeJSON(c.w, http.StatusOK, tunnelproto.TunnelListByRegionResponse{
		Value: []tunnelproto.TunnelListByRegion{{RegionName: RegionName, ClusterID: a.clusterID, Value: out}},
	})
	return nil
}

func (a *API) getTunnel(c *call, ref string) error {
	t, err := a.access(c, ref, scopesRead)
	if err != nil {
		return err
	}
	scopes, err := tokenScopes(c.q)
	if err != nil {
		return err
	}
	if err := c.mayGrant(scopes); err != nil {
		return err
	}
	return a.answerTunnel(c, t, scopes)
}

// answerTunnel writes t with fresh tokens for scopes.
func (a *API) answerTunnel(c *call, t *store.Tunnel, scopes []string) error {
	tj, err := a.tunnelJSON(c.r.Context(), t, flag(c, "includePorts"))
	if err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q", t.ID))
	}
	if tj.AccessTokens, err = a.issue(c, t, scopes); err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, tj)
	return nil
}

// putTunnel creates or updates; see "PUT semantics" in the package doc.
func (a *API) putTunnel(c *call, ref string) error {
	createOnly := c.r.Header.Get("If-None-Match") == "*" || c.r.Header.Get("If-Not-Match") == "*"
	updateOnly := c.r.Header.Get("If-Match") == "*"
	if createOnly && updateOnly {
		return &apiError{status: http.StatusBadRequest, detail: "If-Match and If-None-Match exclude each other"}
	}
	if err := a.authenticate(c); err != nil {
		return err
	}
	if err := c.mayUseTunnels(); err != nil {
		return err
	}
	ctx := c.r.Context()
	t, err := a.store.FindTunnel(ctx, ref)
	switch {
	case errors.Is(err, store.ErrNotFound):
		switch {
		case updateOnly:
			return c.missing(ref)
		case !c.operator():
			return forbidden("only the operator may create tunnels")
		}
		return a.createTunnel(c, ref)
	case err != nil:
		return fmt.Errorf("find tunnel %q: %w", ref, err)
	}
	if err := c.mayAct(t, scopesManage); err != nil {
		return err
	}
	if createOnly {
		return conflict(fmt.Sprintf("tunnel %q already exists", ref))
	}
	return a.updateTunnel(c, t)
}

func (a *API) createTunnel(c *call, id string) error {
	ctx := c.r.Context()
	body, err := readBody(c)
	if err != nil {
		return err
	}
	p, err := decodeTunnel(body)
	if err != nil {
		return err
	}
	if !validID(id) {
		return badField("tunnelId", "tunnel id %q in the path must match %s", id, idRE)
	}
	if p.tunnelID != nil && *p.tunnelID != "" && *p.tunnelID != id {
		return badField("tunnelId", "body tunnelId %q differs from %q in the path", *p.tunnelID, id)
	}
	scopes, err := tokenScopes(c.q)
	if err != nil {
		return err
	}
	now := a.now()
	t := &store.Tunnel{ID: id, Created: now, Updated: now}
	p.apply(t)
	if err := a.checkName(ctx, t); err != nil {
		return err
	}
	if err := a.store.CreateTunnel(ctx, t); err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q (or its name %q)", id, t.Name))
	}
	for _, pp := range p.ports {
		port := &store.Port{TunnelID: id, Number: *pp.number, Created: now, Updated: now}
		pp.apply(port)
		if err := a.store.CreatePort(ctx, port); err != nil {
			// Undo, so that a retry of the create does not hit 409.
			if derr := a.store.DeleteTunnel(context.WithoutCancel(ctx), id); derr != nil {
				err = errors.Join(err, fmt.Errorf("undo create: %w", derr))
			}
			return fmt.Errorf("create port %d of new tunnel %q: %w", port.Number, id, err)
		}
	}
	a.log.Info("tunnel created", "tunnel", id, "name", t.Name, "ports", len(p.ports), "principal", c.p.String())
	return a.answerTunnel(c, t, scopes)
}

func (a *API) updateTunnel(c *call, t *store.Tunnel) error {
	ctx := c.r.Context()
	body, err := readBody(c)
	if err != nil {
		return err
	}
	p, err := decodeTunnel(body)
	if err != nil {
		return err
	}
	if p.tunnelID != nil && *p.tunnelID != "" && *p.tunnelID != t.ID {
		return badField("tunnelId", "body tunnelId %q is not the tunnel's id %q", *p.tunnelID, t.ID)
	}
	scopes, err := tokenScopes(c.q)
	if err != nil {
		return err
	}
	if err := c.mayGrant(scopes); err != nil {
		return err
	}
	u := t.Clone()
	p.apply(u)
	u.Updated = a.now()
	if u.Name != t.Name {
		if err := a.checkName(ctx, u); err != nil {
			return err
		}
	}
	if err := a.store.UpdateTunnel(ctx, u); err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q (or its name %q)", t.ID, u.Name))
	}
	return a.answerTunnel(c, u, scopes)
}

// checkName refuses a name that another tunnel already answers to, by id
// or by name: {id} resolution would otherwise hide one of the two. (The
// store only keeps names unique among names.)
func (a *API) checkName(ctx context.Context, t *store.Tunnel) error {
	other, err := a.store.FindTunnel(ctx, t.Name)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("find tunnel %q: %w", t.Name, err)
	case other.ID == t.ID:
		return nil
	}
	return conflict(fmt.Sprintf("the name %q is taken by another tunnel", t.Name))
}

func (a *API) deleteTunnel(c *call, ref string) error {
	t, err := a.access(c, ref, scopesManage)
	if err != nil {
		return err
	}
	if err := a.store.DeleteTunnel(c.r.Context(), t.ID); err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q", t.ID))
	}
	a.log.Info("tunnel deleted", "tunnel", t.ID, "principal", c.p.String())
	writeEmpty(c.w)
	return nil
}

func (a *API) postEvents(c *call, ref string) error {
	if _, err := a.access(c, ref, nil); err != nil {
		return err
	}
	// Telemetry from the TS and C# SDKs: read (bounded) and dropped.
	if _, err := readBody(c); err != nil {
		return err
	}
	writeEmpty(c.w)
	return nil
}

// tunnelJSON renders t as the SDKs expect it: the relay's clusterId, endpoints [] or
// exactly the one live endpoint, and, with includePorts, its ports.
func (a *API) tunnelJSON(ctx context.Context, t *store.Tunnel, includePorts bool) (*tunnelproto.Tunnel, error) {
	eps, err := a.store.ListEndpoints(ctx, t.ID)
	if err != nil {
		return nil, fmt.Errorf("list endpoints of tunnel %q: %w", t.ID, err)
	}
	ports, err := a.store.ListPorts(ctx, t.ID)
	if err != nil {
		return nil, fmt.Errorf("list ports of tunnel %q: %w", t.ID, err)
	}
	created := t.Created
	out := &tunnelproto.Tunnel{
		ClusterID:     a.clusterID,
		TunnelID:      t.ID,
		Name:          t.Name,
		Description:   t.Description,
		Labels:        t.Labels,
		Domain:        t.Domain,
		AccessControl: t.AccessControl,
		Options:       t.Options,
		Endpoints:     []tunnelproto.TunnelEndpoint{},
		Created:       &created,
		Expiration:    t.Expiration,
		Status: &tunnelproto.TunnelStatus{
			PortCount:           &tunnelproto.ResourceStatus{Current: uint64(len(ports))},
			HostConnectionCount: &tunnelproto.ResourceStatus{},
		},
	}
	if e := a.liveEndpoint(eps); e != nil {
		out.Endpoints = append(out.Endpoints, a.endpointJSON(e))
		out.Status.HostConnectionCount.Current = 1
	}
	if includePorts {
		out.Ports = make([]tunnelproto.TunnelPort, 0, len(ports))
		for _, p := range ports {
			out.Ports = append(out.Ports, a.portJSON(p))
		}
	}
	return out, nil
}

// flag reads a boolean query parameter; anything unparsable is false.
func flag(c *call, name string) bool {
	v, err := strconv.ParseBool(c.q.Get(name))
	return err == nil && v
}
