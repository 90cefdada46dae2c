package relayserver

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// clusterState is the Server's part of cross-node routing.
type clusterState struct {
	cm           *clusterMetrics
	hops         hops
	hopTransport *http.Transport
	hopClient    *http.Client
	nodes        nodeCache
	endedTickets chan string // claims to release

	// bg runs the short node-to-node notifications; bgCtx ends with Close.
	bg       sync.WaitGroup
	bgCtx    context.Context
	bgCancel context.CancelFunc
}

func (s *Server) initCluster() error {
	s.hopTransport = newHopTransport()
	s.hopClient = &http.Client{Transport: s.hopTransport}
	s.endedTickets = make(chan string, 4096)
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	var err error
	s.cm, err = newClusterMetrics(s.cfg.Registry)
	return err
}

// routeInternal mounts the node-to-node endpoints; hopGate has
// authenticated every request that reaches them.
func (s *Server) routeInternal() {
	s.mux.HandleFunc("GET "+internalPrefix+"dial/{tunnelId}/{port}", s.serveDial)
	s.mux.HandleFunc("POST "+internalPrefix+"host-replaced/{tunnelId}", s.serveHostReplaced)
	s.mux.HandleFunc("POST "+internalPrefix+"wing-moved/{wingId}", s.serveWingMoved)
}

// runCluster releases ended tickets' claims and, in a cluster, sweeps for
// hosts and wings another node took over, until ctx ends.
func (s *Server) runCluster(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.releaseTickets(ctx) })
	if s.clustered() {
		wg.Go(func() {
			t := time.NewTicker(s.member.Lease() / 3)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				sctx, cancel := context.WithTimeout(ctx, s.member.Lease()/3)
				if s.member.Ready() {
					s.sweepHosts(sctx)
					s.sweepWings(sctx)
				}
				cancel()
			}
		})
	}
	wg.Wait()
}

// leaseLost drops every host and wing connection: the records behind them
// were released when this node was taken for dead, and the peers,
// reconnecting through the load balancer, record themselves anew.
func (s *Server) leaseLost() {
	h := s.hosts.DropAll()
	w := s.wings.DropAll("relay node lost its lease; reconnect")
	s.log.Warn("dropped the connections of records this node no longer holds", "hosts", h, "wings", w)
}

// closeCluster ends carried connections and notifications.
func (s *Server) closeCluster() {
	s.hops.close()
	s.bgCancel()
	s.bg.Wait()
	s.hopTransport.CloseIdleConnections()
}

type clusterMetrics struct {
	hops        *prometheus.CounterVec
	hopFailures prometheus.Counter
	hopRefused  prometheus.Counter
	replaced    *prometheus.CounterVec
}

func newClusterMetrics(reg prometheus.Registerer) (*clusterMetrics, error) {
	const ns, sub = "warren", "cluster"
	m := &clusterMetrics{
		hops: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "hops_total",
			Help: "Requests and connections this node carried to the node holding what they address, by kind."}, []string{"kind"}),
		hopFailures: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "hop_failures_total",
			Help: "Node-to-node hops that failed: the owner node did not answer."}),
		hopRefused: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "hop_refused_total",
			Help: "Requests refused for naming the node-to-node hop without the right cluster secret."}),
		replaced: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "replaced_total",
			Help: "Hosts and wings dropped here because a newer connection registered on another node, by kind."}, []string{"kind"}),
	}
	for _, k := range []string{"tunnel_client", "tunnel_port", "ticket", "wing_user", "wing_list"} {
		m.hops.WithLabelValues(k)
	}
	for _, k := range []string{"host", "wing"} {
		m.replaced.WithLabelValues(k)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.hops, m.hopFailures, m.hopRefused, m.replaced} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}
