package tunnelrelay

import (
	"sort"
	"time"
)

// The hooks a clustered relay-server uses to keep one host per tunnel
// across its nodes; a single relay never needs them.

// HostSince reports when the host session of tunnelID connected here, and
// whether one is connected.
func (r *Relay) HostSince(tunnelID string) (time.Time, bool) {
	h := r.host(tunnelID)
	if h == nil {
		return time.Time{}, false
	}
	return h.started, true
}

// Hosts lists the tunnel IDs whose host is connected here, sorted.
func (r *Relay) Hosts() []string {
	r.mu.Lock()
	out := make([]string, 0, len(r.hosts))
	for id := range r.hosts {
		out = append(out, id)
	}
	r.mu.Unlock()
	sort.Strings(out)
	return out
}

// Replace drops the host of tunnelID connected here if it connected at or
// before since, telling it, as a newer host on this relay would, that it
// was replaced (CloseStatusReplaced): another node now holds the tunnel's
// host. It reports whether a host was dropped.
func (r *Relay) Replace(tunnelID string, since time.Time) bool {
	h := r.host(tunnelID)
	if h == nil || h.started.After(since) {
		return false
	}
	r.mu.Lock()
	if r.hosts[tunnelID] == h {
		delete(r.hosts, tunnelID)
	}
	r.mu.Unlock()
	go h.replace()
	return true
}

// DropAll closes every host session here without a replacement signal, so
// the hosts reconnect (through the load balancer, to any node): this node
// lost its lease and its records with it.
func (r *Relay) DropAll() int {
	r.mu.Lock()
	hosts := make([]*hostSession, 0, len(r.hosts))
	for id, h := range r.hosts {
		hosts = append(hosts, h)
		delete(r.hosts, id)
	}
	r.mu.Unlock()
	for _, h := range hosts {
		go h.conn.Close()
	}
	return len(hosts)
}
