package tunnelhost

import (
	"context"
	"errors"
	"fmt"

	"github.com/warrenhq/warren/internal/devtunnels/apiclient"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// The management API calls. The client authenticates with the operator key
// when there is one, else the current host token; errors carry the
// "tunnelhost: " prefix and keep *apiclient.StatusError in their chain.

func apiErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("tunnelhost: %w", err)
}

// getTunnel reads the tunnel with its ports; withHostToken asks for a fresh
// host token too (operator key only).
func (h *Host) getTunnel(ctx context.Context, withHostToken bool) (*tunnelproto.Tunnel, error) {
	o := apiclient.GetOptions{IncludePorts: true}
	if withHostToken {
		o.TokenScopes = []string{tunnelproto.ScopeHost}
	}
	t, err := h.api.GetTunnel(ctx, h.cfg.TunnelID, o)
	if err != nil {
		return nil, apiErr(err)
	}
	if withHostToken {
		tok := apiclient.AccessToken(t, tunnelproto.ScopeHost)
		if tok == "" {
			return nil, errors.New("tunnelhost: GET tunnel: no host token in accessTokens")
		}
		h.setToken(tok)
	}
	return t, nil
}

// putPort creates or updates a port; 409 is tolerated.
func (h *Host) putPort(ctx context.Context, p Port) error {
	_, err := h.api.PutPort(ctx, h.cfg.TunnelID, &tunnelproto.TunnelPort{PortNumber: p.Number, Protocol: p.Protocol}, apiclient.CreateOrUpdate)
	if errors.Is(err, apiclient.ErrConflict) {
		return nil
	}
	return apiErr(err)
}

// deletePort deletes a port; 404 is tolerated.
func (h *Host) deletePort(ctx context.Context, n uint16) error {
	err := h.api.DeletePort(ctx, h.cfg.TunnelID, n)
	if errors.Is(err, apiclient.ErrNotFound) {
		return nil
	}
	return apiErr(err)
}

func (h *Host) endpointID() string { return h.hostID + "-relay" }

func (h *Host) putEndpoint(ctx context.Context) (*tunnelproto.TunnelEndpoint, error) {
	ep, err := h.api.PutEndpoint(ctx, h.cfg.TunnelID, &tunnelproto.TunnelEndpoint{
		ID:             h.endpointID(),
		HostID:         h.hostID,
		ConnectionMode: tunnelproto.ConnectionModeTunnelRelay,
		HostPublicKeys: h.pubKeyB64,
	})
	return ep, apiErr(err)
}

// deleteEndpoint unregisters the endpoint; 404 is tolerated.
func (h *Host) deleteEndpoint(ctx context.Context) error {
	err := h.api.DeleteEndpoint(ctx, h.cfg.TunnelID, h.endpointID())
	if errors.Is(err, apiclient.ErrNotFound) {
		return nil
	}
	return apiErr(err)
}
