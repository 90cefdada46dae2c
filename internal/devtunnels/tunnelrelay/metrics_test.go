package tunnelrelay

import (
	"bytes"
	"io"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

// metricValue reads one series from the relay's registry: the gauge or
// counter name with exactly these label values (label name, value pairs);
// -1 if the series does not exist.
func (e *env) metricValue(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if want[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				return m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func (e *env) waitMetric(name string, want float64, labels ...string) {
	e.t.Helper()
	waitFor(e.t, name+" = "+strconvU(uint32(want)), func() bool { return e.metricValue(name, labels...) == want })
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	const (
		hosts     = "warren_relay_tunnel_hosts"
		clients   = "warren_relay_tunnel_clients"
		forwarded = "warren_relay_tunnel_forwarded_connections_total"
		bytesTot  = "warren_relay_tunnel_bytes_total"
		upgrades  = "warren_relay_tunnel_upgrades_total"
	)
	for _, v := range []string{"v1", "v2"} {
		if got := e.metricValue(hosts, "version", v); got != 0 {
			t.Fatalf("%s{%s} = %v before any host, want 0", hosts, v, got)
		}
	}

	// Refused upgrades, counted by outcome.
	if _, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel garbage", tunnelproto.SubprotocolClientV1); err == nil {
		t.Fatal("garbage token accepted")
	}
	if _, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1); err == nil {
		t.Fatal("client accepted without a host")
	}
	if _, _, err := dialWS(testCtx(t), e.url("host", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolHostV2); err == nil {
		t.Fatal("connect token accepted for a host")
	}
	if _, _, err := dialWS(testCtx(t), e.url("host", testTunnel), "Tunnel "+e.token(testTunnel, "host")); err == nil {
		t.Fatal("host accepted without a subprotocol")
	}
	for _, c := range []struct {
		role, result string
		want         float64
	}{
		{"client", "unauthorized", 1}, {"client", "not_found", 1},
		{"host", "forbidden", 1}, {"host", "bad_request", 1}, {"host", "ok", 0},
	} {
		if got := e.metricValue(upgrades, "role", c.role, "result", c.result); got != c.want {
			t.Errorf("%s{role=%s,result=%s} = %v, want %v", upgrades, c.role, c.result, got, c.want)
		}
	}

	h := e.dialHost(tunnelproto.SubprotocolHostV2)
	e.waitMetric(hosts, 1, "version", "v2")
	if got := e.metricValue(upgrades, "role", "host", "result", "ok"); got != 1 {
		t.Errorf("host upgrades ok = %v, want 1", got)
	}
	port := e.echoPort()
	if ok, _ := h.register(tunnelproto.RequestTCPIPForward, port, e.token(testTunnel, "host")); !ok {
		t.Fatal("register refused")
	}

	// A V2 client: the client gauge, a bridged forwarded-tcpip, and bytes
	// counted while the channel is still open.
	sc, events := e.v2Client(t)
	expectEvent(t, events, tunnelproto.RequestTCPIPForward+":"+strconvU(port))
	e.waitMetric(clients, 1, "version", "v2")
	ch, reqs, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP,
		tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: port, AccessToken: e.token(testTunnel, "connect")}.Marshal())
	if err != nil {
		t.Fatalf("forwarded-tcpip: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	e.waitMetric(forwarded, 1, "kind", tunnelproto.ChannelForwardedTCPIP)

	const chunk = 1 << 20
	msg := bytes.Repeat([]byte("warren"), chunk/6+1)[:chunk]
	buf := make([]byte, chunk)
	var prevTo, prevFrom float64
	for i := 1; i <= 3; i++ {
		if _, err := ch.Write(msg); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(ch, buf); err != nil {
			t.Fatal(err)
		}
		// Mid-transfer: the channel is open and more is to come. Every
		// byte written has come back, so both directions have passed the
		// relay's splice. The splice counts a buffer just after writing
		// it, so the last buffer may be counted a moment after the reader
		// has it: wait for that moment rather than race it.
		var to, from float64
		waitFor(t, "bytes counted mid-transfer", func() bool {
			to = e.metricValue(bytesTot, "direction", "to_host")
			from = e.metricValue(bytesTot, "direction", "from_host")
			return to >= float64(i*chunk) && from >= float64(i*chunk)
		})
		if to <= prevTo || from <= prevFrom {
			t.Fatalf("after %d MiB echoed: to_host %v, from_host %v (before: %v, %v)", i, to, from, prevTo, prevFrom)
		}
		prevTo, prevFrom = to, from
	}
	ch.Close()

	// A V1 client: its own gauge series and a client-ssh-session-stream.
	v1, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	e.waitMetric(clients, 1, "version", "v1")
	e.waitMetric(forwarded, 1, "kind", tunnelproto.ChannelClientSSHSessionStream)
	if got := e.metricValue(upgrades, "role", "client", "result", "ok"); got != 2 {
		t.Errorf("client upgrades ok = %v, want 2", got)
	}

	v1.Close()
	e.waitMetric(clients, 0, "version", "v1")
	sc.Close()
	e.waitMetric(clients, 0, "version", "v2")
	h.ssh.Close()
	e.waitMetric(hosts, 0, "version", "v2")
	e.waitMetric(hosts, 0, "version", "v1")
}
