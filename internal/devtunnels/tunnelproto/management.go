package tunnelproto

import (
	"encoding/json"
	"time"
)

// APIVersion is the only management API version the SDKs speak.
const APIVersion = "2023-09-27-preview"

// Access scopes of tunnel tokens.
const (
	ScopeCreate      = "create"
	ScopeManage      = "manage"
	ScopeManagePorts = "manage:ports"
	ScopeHost        = "host"
	ScopeInspect     = "inspect"
	ScopeConnect     = "connect"
)

// ConnectionModeTunnelRelay is the only endpoint connection mode warren uses.
const ConnectionModeTunnelRelay = "TunnelRelay"

// Tunnel is the management API's tunnel resource.
type Tunnel struct {
	ClusterID        string            `json:"clusterId"`
	TunnelID         string            `json:"tunnelId,omitempty"`
	Name             string            `json:"name,omitempty"`
	Description      string            `json:"description,omitempty"`
	Labels           []string          `json:"labels,omitempty"`
	Domain           string            `json:"domain,omitempty"`
	AccessTokens     map[string]string `json:"accessTokens,omitempty"`
	AccessControl    json.RawMessage   `json:"accessControl,omitempty"`
	Options          json.RawMessage   `json:"options,omitempty"`
	Status           *TunnelStatus     `json:"status,omitempty"`
	Endpoints        []TunnelEndpoint  `json:"endpoints"`
	Ports            []TunnelPort      `json:"ports,omitempty"`
	Created          *time.Time        `json:"created,omitempty"`
	Expiration       *time.Time        `json:"expiration,omitempty"`
	CustomExpiration uint32            `json:"customExpiration,omitempty"`
}

// TunnelStatus is the subset of status warren reports.
type TunnelStatus struct {
	PortCount           *ResourceStatus `json:"portCount,omitempty"`
	HostConnectionCount *ResourceStatus `json:"hostConnectionCount,omitempty"`
}

// ResourceStatus is a current count with an optional limit.
type ResourceStatus struct {
	Current uint64 `json:"current"`
	Limit   uint64 `json:"limit,omitempty"`
}

// TunnelPort is the management API's port resource.
type TunnelPort struct {
	ClusterID          string            `json:"clusterId"`
	TunnelID           string            `json:"tunnelId,omitempty"`
	PortNumber         uint16            `json:"portNumber"`
	Name               string            `json:"name,omitempty"`
	Description        string            `json:"description,omitempty"`
	Labels             []string          `json:"labels,omitempty"`
	Protocol           string            `json:"protocol,omitempty"`
	IsDefault          bool              `json:"isDefault,omitempty"`
	AccessTokens       map[string]string `json:"accessTokens,omitempty"`
	AccessControl      json.RawMessage   `json:"accessControl,omitempty"`
	Options            json.RawMessage   `json:"options,omitempty"`
	SSHUser            string            `json:"sshUser,omitempty"`
	PortForwardingURIs []string          `json:"portForwardingUris"`
	InspectionURI      string            `json:"inspectionUri"`
}

// TunnelPortList is the body of GET /tunnels/{id}/ports.
type TunnelPortList struct {
	Value    []TunnelPort `json:"value"`
	NextLink string       `json:"nextLink"`
}

// TunnelListByRegion is one region's tunnels in GET /tunnels. The SDKs
// read the list grouped by region; a flat list parses as empty.
type TunnelListByRegion struct {
	RegionName string   `json:"regionName,omitempty"`
	ClusterID  string   `json:"clusterId"`
	Value      []Tunnel `json:"value"`
}

// TunnelListByRegionResponse is the body of GET /tunnels.
type TunnelListByRegionResponse struct {
	Value    []TunnelListByRegion `json:"value"`
	NextLink string               `json:"nextLink"`
}

// TunnelEndpoint is a host's registration on a tunnel.
type TunnelEndpoint struct {
	ID                   string   `json:"id,omitempty"`
	ConnectionMode       string   `json:"connectionMode"`
	HostID               string   `json:"hostId"`
	HostPublicKeys       []string `json:"hostPublicKeys,omitempty"`
	PortURIFormat        string   `json:"portUriFormat,omitempty"`
	TunnelURI            string   `json:"tunnelUri,omitempty"`
	PortSSHCommandFormat string   `json:"portSshCommandFormat,omitempty"`
	TunnelSSHCommand     string   `json:"tunnelSshCommand,omitempty"`
	SSHGatewayPublicKey  string   `json:"sshGatewayPublicKey,omitempty"`
	// HostEndpoints is sent by the Go SDK, often as null; warren ignores it.
	HostEndpoints  []string `json:"hostEndpoints"`
	HostRelayURI   string   `json:"hostRelayUri,omitempty"`
	ClientRelayURI string   `json:"clientRelayUri,omitempty"`
}

// ProblemDetails is the RFC 7807 error body of the management API.
type ProblemDetails struct {
	Type   string              `json:"type,omitempty"`
	Title  string              `json:"title"`
	Status int                 `json:"status,omitempty"`
	Detail string              `json:"detail,omitempty"`
	Errors map[string][]string `json:"errors,omitempty"`
}

// ClusterRecommendationResponse is the body of GET
// /clusters/recommendations (the SDKs' ClusterRecommendationResponse).
type ClusterRecommendationResponse struct {
	PreferredClusterID   string                  `json:"preferredClusterId,omitempty"`
	RecommendedClusterID string                  `json:"recommendedClusterId"`
	IsFallback           bool                    `json:"isFallback"`
	Recommendations      []ClusterRecommendation `json:"recommendations"`
}

// ClusterRecommendation is one ranked cluster of a
// ClusterRecommendationResponse.
type ClusterRecommendation struct {
	ClusterID          string  `json:"clusterId"`
	AzureLocation      string  `json:"azureLocation,omitempty"`
	AzureGeo           string  `json:"azureGeo,omitempty"`
	ClusterURI         string  `json:"clusterUri"`
	Availability       string  `json:"availability"`
	UtilizationPercent float64 `json:"utilizationPercent"`
	Reason             string  `json:"reason,omitempty"`
}
