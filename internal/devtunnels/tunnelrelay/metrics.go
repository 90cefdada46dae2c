package tunnelrelay

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/pipe"
)

// Upgrade results of warren_relay_tunnel_upgrades_total.
const (
	upgradeOK           = "ok"
	upgradeUnauthorized = "unauthorized" // 401: missing, bad or expired token
	upgradeForbidden    = "forbidden"    // 403: other tunnel or missing scope
	upgradeNotFound     = "not_found"    // 404: unknown tunnel, or no host (client)
	upgradeBadRequest   = "bad_request"  // 400: subprotocol, or WebSocket upgrade refused
	upgradeError        = "error"        // 500/503: store failure, shutting down
)

const (
	roleHost   = "host"
	roleClient = "client"
)

// Key exchange kinds of warren_relay_tunnel_ssh_sessions_total.
const (
	kexNone     = "none"
	kexStandard = "standard"
)

// kexKind names the key exchange c negotiated.
func kexKind(c ssh.Conn) string {
	if s, ok := c.(*ssh.ServerConn); ok {
		c = s.Conn // the embedded connection has the algorithms
	}
	if a, ok := c.(ssh.AlgorithmsConnMetadata); ok && a.Algorithms().KeyExchange == ssh.KeyExchangeNone {
		return kexNone
	}
	return kexStandard
}

// metrics are the relay's Prometheus collectors. They carry no tunnel ID
// or address labels, so their cardinality is fixed.
type metrics struct {
	hosts     *prometheus.GaugeVec   // version
	clients   *prometheus.GaugeVec   // version
	forwarded *prometheus.CounterVec // kind
	upgrades  *prometheus.CounterVec // role, result
	kex       *prometheus.CounterVec // role, kex

	bytesToHost, bytesFromHost prometheus.Counter
}

// newMetrics builds the collectors and registers them with reg; nil reg
// keeps them unregistered (they still count, nobody reads them).
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		hosts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "warren", Subsystem: "relay", Name: "tunnel_hosts",
			Help: "Host sessions currently connected, by relay protocol version (v1, v2).",
		}, []string{"version"}),
		clients: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "warren", Subsystem: "relay", Name: "tunnel_clients",
			Help: "Client relay sockets currently connected, by relay protocol version (v1, v2).",
		}, []string{"version"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warren", Subsystem: "relay", Name: "tunnel_forwarded_connections_total",
			Help: "Client streams spliced to a host: V2 forwarded-tcpip channels bridged, and V1 client-ssh-session-stream channels opened.",
		}, []string{"kind"}),
		upgrades: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warren", Subsystem: "relay", Name: "tunnel_upgrades_total",
			Help: "Host and client relay WebSocket requests, by role and pre-upgrade outcome.",
		}, []string{"role", "result"}),
		kex: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "warren", Subsystem: "relay", Name: "tunnel_ssh_sessions_total",
			Help: "SSH sessions on relay sockets (hosts and V2 clients), by role and key exchange: none (dev-tunnels-ssh's unencrypted one, TLS protects the socket) or standard.",
		}, []string{"role", "kex"}),
	}
	bytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "warren", Subsystem: "relay", Name: "tunnel_bytes_total",
		Help: "Bytes the relay copied between clients and hosts, counted as they are copied.",
	}, []string{"direction"})
	m.bytesToHost = bytes.WithLabelValues("to_host")
	m.bytesFromHost = bytes.WithLabelValues("from_host")
	// Every series exists from the start, at zero.
	for _, v := range []string{"v1", "v2"} {
		m.hosts.WithLabelValues(v)
		m.clients.WithLabelValues(v)
	}
	m.forwarded.WithLabelValues(tunnelproto.ChannelForwardedTCPIP)
	m.forwarded.WithLabelValues(tunnelproto.ChannelClientSSHSessionStream)
	for _, role := range []string{roleHost, roleClient} {
		m.kex.WithLabelValues(role, kexNone)
		m.kex.WithLabelValues(role, kexStandard)
		for _, res := range []string{upgradeOK, upgradeUnauthorized, upgradeForbidden, upgradeNotFound, upgradeBadRequest, upgradeError} {
			m.upgrades.WithLabelValues(role, res)
		}
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.hosts, m.clients, m.forwarded, m.upgrades, m.kex, bytes} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func version(v2 bool) string {
	if v2 {
		return "v2"
	}
	return "v1"
}

func (m *metrics) upgrade(role, result string) {
	m.upgrades.WithLabelValues(role, result).Inc()
}

// pipeOptions counts the bytes of a client↔host splice live. The client
// side must be Join's a, the host side its b.
func (m *metrics) pipeOptions() *pipe.Options {
	return &pipe.Options{OnCopy: func(d pipe.Direction, n int) {
		if d == pipe.AToB {
			m.bytesToHost.Add(float64(n))
		} else {
			m.bytesFromHost.Add(float64(n))
		}
	}}
}
