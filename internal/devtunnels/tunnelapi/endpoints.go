package tunnelapi

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/store"
)

// putEndpoint registers (or replaces) a host's endpoint and answers it with
// the relay URIs the host and its clients dial.
func (a *API) putEndpoint(c *call, ref, id string) error {
	t, err := a.access(c, ref, scopesHost)
	if err != nil {
		return err
	}
	if !endpointIDRE.MatchString(id) {
		return badField("id", "endpoint id %q in the path must match %s", id, endpointIDRE)
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	e, err := decodeEndpoint(body)
	if err != nil {
		return err
	}
	if e.id != "" && e.id != id {
		return badField("id", "body id %q differs from %q in the path", e.id, id)
	}
	mode := e.connectionMode
	if mode == "" {
		mode = c.q.Get("connectionMode")
	}
	if mode == "" {
		mode = tunnelproto.ConnectionModeTunnelRelay
	}
	if mode != tunnelproto.ConnectionModeTunnelRelay {
		return badField("connectionMode", "must be %q", tunnelproto.ConnectionModeTunnelRelay)
	}
	hostID := e.hostID
	if hostID == "" {
		// Endpoint ids are "<hostId>-relay" (docs/protocols/devtunnels.md §2.1).
		hostID = strings.TrimSuffix(id, "-relay")
	}
	// The node that holds the host's relay session records itself when the
	// session is up (a clustered relay's hook); a re-registration reaching
	// another node through a load balancer keeps that record.
	node := a.node
	if eps, err := a.store.ListEndpoints(c.r.Context(), t.ID); err == nil {
		for _, old := range eps {
			if old.ID == id && old.Node != "" && old.Node != node && a.nodeAlive(c, old.Node) {
				node = old.Node
			}
		}
	}
	se := &store.Endpoint{
		TunnelID:       t.ID,
		ID:             id,
		HostID:         hostID,
		ConnectionMode: mode,
		HostPublicKeys: e.hostPublicKeys,
		Node:           node,
		Updated:        a.now(),
	}
	if err := a.store.PutEndpoint(c.r.Context(), se); err != nil {
		return storeError(err, fmt.Sprintf("tunnel %q", t.ID))
	}
	writeJSON(c.w, http.StatusOK, a.endpointJSON(se))
	return nil
}

func (a *API) deleteEndpoint(c *call, ref, id string) error {
	t, err := a.access(c, ref, scopesHost)
	if err != nil {
		return err
	}
	if err := a.store.DeleteEndpoint(c.r.Context(), t.ID, id); err != nil {
		return storeError(err, fmt.Sprintf("endpoint %q of tunnel %q", id, t.ID))
	}
	writeEmpty(c.w)
	return nil
}

// liveEndpoint picks the endpoint a tunnel read reports: among those whose
// host is connected, the most recently updated (ties: the greatest id, so
// the choice is stable). nil if no host is connected.
func (a *API) liveEndpoint(eps []*store.Endpoint) *store.Endpoint {
	var best *store.Endpoint
	for _, e := range eps {
		if a.hostConnected != nil && !a.hostConnected(e.TunnelID, e.ID) {
			continue
		}
		if best == nil || e.Updated.After(best.Updated) || (e.Updated.Equal(best.Updated) && e.ID > best.ID) {
			best = e
		}
	}
	return best
}

func (a *API) endpointJSON(e *store.Endpoint) tunnelproto.TunnelEndpoint {
	var format string
	if a.portURIFormat != nil {
		format = a.portURIFormat(e.TunnelID)
	}
	return tunnelproto.TunnelEndpoint{
		PortURIFormat:  format,
		ID:             e.ID,
		ConnectionMode: e.ConnectionMode,
		HostID:         e.HostID,
		HostPublicKeys: slices.Clone(e.HostPublicKeys),
		HostEndpoints:  []string{},
		HostRelayURI:   a.HostRelayURI(e.TunnelID),
		ClientRelayURI: a.ClientRelayURI(e.TunnelID),
	}
}

// nodeAlive reports whether the relay node id is registered with a lease
// that has not ended.
func (a *API) nodeAlive(c *call, id string) bool {
	nodes, err := a.store.ListNodes(c.r.Context())
	if err != nil {
		return false
	}
	for _, n := range nodes {
		if n.ID == id {
			return n.Expires.After(a.now())
		}
	}
	return false
}
