package winghub

import "github.com/prometheus/client_golang/prometheus"

// hubMetrics never label by session, wing or address: those are unbounded.
type hubMetrics struct {
	wings, users, sessions, tunnels           prometheus.Gauge
	registrations, reaped, started, attention prometheus.Counter
	bandwidthExceeded, slowUsers              prometheus.Counter
	ownerRefusals                             prometheus.Counter
	droppedFrames                             prometheus.Counter // spectators typing leave no other trace
	direct                                    prometheus.Gauge
	migrated, fallbacks                       prometheus.Counter
	frames, bytes, authFailures               *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *hubMetrics {
	const ns, sub = "warren", "wing_hub"
	m := &hubMetrics{
		wings:             prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "wings", Help: "Wings connected now."}),
		users:             prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "user_connections", Help: "User (browser, wing attach) sockets connected now."}),
		sessions:          prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions", Help: "PTY session routes known now."}),
		tunnels:           prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "tunnel_requests", Help: "Tunnel requests waiting for a reply."}),
		registrations:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "registrations_total", Help: "Wing registrations accepted."}),
		reaped:            prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "wings_reaped_total", Help: "Wings closed after missing 3 heartbeats."}),
		started:           prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_started_total", Help: "pty.start requests routed to a wing."}),
		attention:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "attention_total", Help: "session.attention events (deduplicated)."}),
		bandwidthExceeded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bandwidth_exceeded_total", Help: "User sockets closed at the monthly bandwidth cap."}),
		slowUsers:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "user_queue_overflows_total", Help: "User sockets closed because they fell too far behind (their send queue was full)."}),
		ownerRefusals:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "registrations_refused_owner_total", Help: "Wing registrations refused: the wing id belongs to another user."}),
		droppedFrames:     prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "session_frames_dropped_total", Help: "Session frames (input, resize, kill, ...) dropped: the sending socket is not the session's controller."}),
		direct:            prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "sessions_direct", Help: "Sessions whose I/O is on a direct WebRTC channel now, not through the relay."}),
		migrated:          prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_migrated_total", Help: "Sessions moved onto a direct WebRTC channel (pty.migrated)."}),
		fallbacks:         prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "sessions_fallback_total", Help: "Direct sessions back on the relay after their channel died (pty.fallback)."}),
		frames:            prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "frames_total", Help: "Frames received, by peer kind."}, []string{"from"}),
		bytes:             prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "bytes_total", Help: "Frame bytes moved, by direction."}, []string{"direction"}),
		authFailures:      prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "auth_failures_total", Help: "Upgrades refused with 401, by socket kind."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.wings, m.users, m.sessions, m.tunnels, m.registrations, m.reaped, m.started, m.attention, m.bandwidthExceeded, m.slowUsers, m.ownerRefusals, m.droppedFrames, m.direct, m.migrated, m.fallbacks, m.frames, m.bytes, m.authFailures)
	}
	return m
}
