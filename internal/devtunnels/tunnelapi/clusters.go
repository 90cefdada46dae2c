package tunnelapi

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
)

// ErrBadClusterID is wrapped by ValidClusterID's errors.
var ErrBadClusterID = errors.New("bad cluster id")

// clusterIDSyntax is a DNS label: the SDKs put the cluster id in front of
// the service host name.
var clusterIDSyntax = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidClusterID checks id's syntax: one lowercase DNS label.
func ValidClusterID(id string) error {
	if !clusterIDSyntax.MatchString(id) {
		return fmt.Errorf("%w %q: want one lowercase DNS label ([a-z0-9-], at most 63)", ErrBadClusterID, id)
	}
	return nil
}

// DefaultClusterID derives the cluster id from the relay's public URL: the
// first label of its host ("relay" for https://relay.example.com, "127" for
// http://127.0.0.1:8080, "localhost" for http://localhost:8080), and
// "local" when that is no DNS label (an IPv6 literal, a bad URL).
//
// Why the first label: both SDKs rewrite the management URL's host with the
// cluster id once a tunnel has one. The Go SDK leaves a host that already
// starts with the cluster id alone, so with this default it never rewrites.
// The TS SDK leaves IP literals and "localhost" alone, replaces a first
// label shaped like a cluster id ([a-z]{3,4}[0-9]{1,3}, e.g. "use1") with
// the id, and otherwise prefixes "<clusterId>." — the one case where the
// deployment's DNS (and certificate) must also answer for
// "<clusterId>.<host>". README's "Dev Tunnels SDKs and cluster ids" says so.
func DefaultClusterID(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil {
		return DefaultNode
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		return DefaultNode
	}
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	if ValidClusterID(label) != nil {
		return DefaultNode
	}
	return label
}

// ClusterID is the cluster id this API reports.
func (a *API) ClusterID() string { return a.clusterID }

// recommendClusters answers GET /clusters/recommendations: the SDKs ask
// before creating a tunnel without a clusterId, and take the recommended
// one. There is one cluster, this relay; it is recommended whether or not
// the caller's credentials are good (the SDKs retry without them on 401).
func (a *API) recommendClusters(c *call) error {
	preferred := c.q.Get("preferredClusterId")
	writeJSON(c.w, http.StatusOK, tunnelproto.ClusterRecommendationResponse{
		PreferredClusterID:   preferred,
		RecommendedClusterID: a.clusterID,
		IsFallback:           preferred != "" && preferred != a.clusterID,
		Recommendations: []tunnelproto.ClusterRecommendation{{
			ClusterID:    a.clusterID,
			ClusterURI:   a.publicURL,
			Availability: "Available",
			Reason:       "the only cluster of this relay",
		}},
	})
	return nil
}
