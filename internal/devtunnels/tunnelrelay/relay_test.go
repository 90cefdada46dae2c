package tunnelrelay

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/warrenhq/warren/internal/auth/token"
	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

func TestPreUpgradeStatuses(t *testing.T) {
	e := newEnv(t)
	hostTok := "Tunnel " + e.token(testTunnel, "host")
	connTok := "Tunnel " + e.token(testTunnel, "connect")
	past, err := token.New(token.Config{Keys: e.keys, Issuer: "http://relay.test",
		Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, err := past.Issue(token.Grant{TunnelID: testTunnel, TunnelCreated: e.created, Scopes: []string{"host"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// A token of an earlier tunnel with the same id, deleted since.
	stale := func(scope string) string {
		tok, _, err := e.tokens.Issue(token.Grant{TunnelID: testTunnel, TunnelCreated: e.created.Add(-time.Second), Scopes: []string{scope}, TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return "Tunnel " + tok
	}
	v1, v2 := tunnelproto.SubprotocolHostV1, tunnelproto.SubprotocolHostV2
	tests := []struct {
		name, role, tunnel, auth string
		protos                   []string
		want                     int
	}{
		{"host no subprotocol", "host", testTunnel, hostTok, nil, 400},
		{"host wrong subprotocol", "host", testTunnel, hostTok, []string{"tunnel-relay-client"}, 400},
		{"host no token", "host", testTunnel, "", []string{v2}, 401},
		{"host bearer scheme", "host", testTunnel, "Bearer " + e.token(testTunnel, "host"), []string{v2}, 401},
		{"host garbage token", "host", testTunnel, "Tunnel abc.def.ghi", []string{v2}, 401},
		{"host expired token", "host", testTunnel, "Tunnel " + expired, []string{v2}, 401},
		{"host connect scope", "host", testTunnel, connTok, []string{v2}, 403},
		{"host other tunnel token", "host", testTunnel, "Tunnel " + e.token("other", "host"), []string{v1}, 403},
		{"host unknown tunnel", "host", "nope", hostTok, []string{v2}, 404},
		{"host token of an earlier tunnel", "host", testTunnel, stale("host"), []string{v2}, 401},
		{"client token of an earlier tunnel", "client", testTunnel, stale("connect"), []string{tunnelproto.SubprotocolClientV1}, 401},
		{"client no subprotocol", "client", testTunnel, connTok, nil, 400},
		{"client host scope", "client", testTunnel, hostTok, []string{tunnelproto.SubprotocolClientV1}, 403},
		{"client no host", "client", testTunnel, connTok, []string{tunnelproto.SubprotocolClientV1}, 404},
		{"client unknown tunnel", "client", "nope", connTok, []string{tunnelproto.SubprotocolClientV1}, 404},
		{"client no token", "client", testTunnel, "", []string{tunnelproto.SubprotocolClientV1}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, resp, err := dialWS(testCtx(t), e.url(tt.role, tt.tunnel), tt.auth, tt.protos...)
			if err == nil {
				c.Close()
				t.Fatal("upgrade succeeded")
			}
			if resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("resp = %v, err = %v; want status %d", resp, err, tt.want)
			}
		})
	}
}

func TestHostSubprotocolAndSchemeCase(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		scheme string
		offer  []string
		want   string
	}{
		{"Tunnel", []string{tunnelproto.SubprotocolHostV2, tunnelproto.SubprotocolHostV1}, tunnelproto.SubprotocolHostV2},
		{"tunnel", []string{tunnelproto.SubprotocolHostV1, tunnelproto.SubprotocolHostV2}, tunnelproto.SubprotocolHostV2},
		{"TUNNEL", []string{tunnelproto.SubprotocolHostV1}, tunnelproto.SubprotocolHostV1},
	} {
		c, resp, err := dialWS(testCtx(t), e.url("host", testTunnel), tc.scheme+" "+e.token(testTunnel, "host"), tc.offer...)
		if err != nil {
			t.Fatalf("%s %v: %v", tc.scheme, tc.offer, err)
		}
		if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want || c.Subprotocol() != tc.want {
			t.Fatalf("offer %v: echoed %q / %q, want %q", tc.offer, got, c.Subprotocol(), tc.want)
		}
		c.Close()
	}
}

func TestClientSubprotocol(t *testing.T) {
	cv1, cv2 := tunnelproto.SubprotocolClientV1, tunnelproto.SubprotocolClientV2
	for _, tc := range []struct {
		host   string
		offer  []string
		want   string
		status int
	}{
		{tunnelproto.SubprotocolHostV2, []string{cv2, cv1}, cv2, 0},
		{tunnelproto.SubprotocolHostV2, []string{cv1}, cv1, 0},
		{tunnelproto.SubprotocolHostV1, []string{cv2, cv1}, cv1, 0},
		{tunnelproto.SubprotocolHostV1, []string{cv2}, "", 400},
	} {
		t.Run(tc.host+"/"+strings.Join(tc.offer, ","), func(t *testing.T) {
			e := newEnv(t)
			e.dialHost(tc.host)
			waitFor(t, "host", func() bool { return e.relay.HostConnected(testTunnel, "") })
			c, resp, err := dialWS(testCtx(t), e.url("client", testTunnel), "tunnel "+e.token(testTunnel, "connect"), tc.offer...)
			if tc.status != 0 {
				if err == nil || resp == nil || resp.StatusCode != tc.status {
					t.Fatalf("resp %v err %v, want %d", resp, err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != tc.want {
				t.Fatalf("echoed %q, want %q", got, tc.want)
			}
		})
	}
}

func TestV2PortRegistrationAndKeepalive(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV2, tunnelproto.SubprotocolHostV1)
	ok, reply := h.register(tunnelproto.RequestTCPIPForward, 8080, e.token(testTunnel, "host"))
	if !ok {
		t.Fatal("registration with a host token refused")
	}
	if p, err := tunnelproto.ParsePortForwardSuccess(reply); err != nil || p != 8080 {
		t.Fatalf("reply port = %d, %v", p, err)
	}
	for name, tok := range map[string]string{
		"connect scope": e.token(testTunnel, "connect"),
		"other tunnel":  e.token("other", "host"),
		"garbage":       "x.y.z",
		"empty":         "",
	} {
		if ok, _ := h.register(tunnelproto.RequestTCPIPForward, 9090, tok); ok {
			t.Errorf("%s: registration accepted", name)
		}
	}
	// Standard 2-field layout has no token: refused.
	if ok, _, _ := h.ssh.SendRequest(tunnelproto.RequestTCPIPForward, true,
		tunnelproto.PortForwardRequest{AddressToBind: "127.0.0.1", Port: 1}.Marshal()); ok {
		t.Error("tokenless tcpip-forward accepted")
	}
	if ok, _, err := h.ssh.SendRequest(tunnelproto.RequestKeepAlive, true, nil); err != nil || ok {
		t.Errorf("keepalive = %v, %v; want false reply", ok, err)
	}
	if ok, _ := h.register(tunnelproto.RequestCancelTCPIPForward, 8080, e.token(testTunnel, "host")); !ok {
		t.Error("cancel of a registered port refused")
	}
	if ok, _ := h.register(tunnelproto.RequestCancelTCPIPForward, 8080, e.token(testTunnel, "host")); ok {
		t.Error("cancel of an unregistered port accepted")
	}
}

func TestV1HostRejectsGlobalRequests(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV1)
	if ok, _ := h.register(tunnelproto.RequestTCPIPForward, 8080, e.token(testTunnel, "host")); ok {
		t.Error("V1 host tcpip-forward accepted")
	}
	if ok, _, err := h.ssh.SendRequest(tunnelproto.RequestKeepAlive, true, nil); err != nil || ok {
		t.Errorf("keepalive = %v, %v", ok, err)
	}
}

// TestV1Client runs the V1 client path on both host versions: the client's
// raw bytes reach the host's nested SSH server, through which a real
// x/crypto client reaches the echo server.
func TestV1Client(t *testing.T) {
	for _, tc := range []struct {
		hostProto string
		none      bool // the host leg's key exchange; the nested session stays standard
	}{{tunnelproto.SubprotocolHostV1, false}, {tunnelproto.SubprotocolHostV2, false}, {tunnelproto.SubprotocolHostV1, true}, {tunnelproto.SubprotocolHostV2, true}} {
		hostProto := tc.hostProto
		t.Run(fmt.Sprintf("%s/none=%v", hostProto, tc.none), func(t *testing.T) {
			e := newEnv(t)
			e.none = tc.none
			e.dialHost(hostProto)
			conn, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
			if err != nil {
				t.Fatal(err)
			}
			sc, chans, reqs, err := ssh.NewClientConn(conn, "host", clientConfig())
			if err != nil {
				t.Fatalf("nested ssh: %v", err)
			}
			defer sc.Close()
			fwd := make(chan uint32, 4)
			go func() {
				for r := range reqs {
					if r.Type == tunnelproto.RequestTCPIPForward {
						pr, _ := tunnelproto.ParsePortForwardRequest(r.Payload)
						r.Reply(true, tunnelproto.MarshalPortForwardSuccess(pr.Port))
						fwd <- pr.Port
						continue
					}
					r.Reply(false, nil)
				}
			}()
			go func() {
				for nc := range chans {
					nc.Reject(ssh.Prohibited, "no")
				}
			}()
			select {
			case p := <-fwd:
				if p != e.echoPort() {
					t.Fatalf("forwarded port %d, want %d", p, e.echoPort())
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no tcpip-forward from the nested host")
			}
			// The Go SDK opens a session channel right after the handshake.
			if ch, _, err := sc.OpenChannel(tunnelproto.ChannelSession, nil); err != nil {
				t.Fatalf("session: %v", err)
			} else {
				ch.Close()
			}
			ch, creqs, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP,
				tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: e.echoPort()}.MarshalStandard())
			if err != nil {
				t.Fatalf("forwarded-tcpip: %v", err)
			}
			go ssh.DiscardRequests(creqs)
			echoRoundTrip(t, ch, "hello over v1")
			ch.Close()
			ch2, creqs2, err := sc.OpenChannel(tunnelproto.ChannelDirectTCPIP,
				tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: e.echoPort()}.MarshalStandard())
			if err != nil {
				t.Fatalf("direct-tcpip: %v", err)
			}
			go ssh.DiscardRequests(creqs2)
			echoRoundTrip(t, ch2, "direct")
			ch2.Close()
		})
	}
}

func TestV1ClientRefusedByHost(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV1)
	h.mu.Lock()
	h.refuse = true
	h.mu.Unlock()
	conn, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	readErr(t, conn) // the relay closes the socket
}

// v2Client connects a V2 client and collects the relay's port
// notifications.
func (e *env) v2Client(t *testing.T) (ssh.Conn, chan string) {
	t.Helper()
	conn, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"),
		tunnelproto.SubprotocolClientV2, tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	if conn.Subprotocol() != tunnelproto.SubprotocolClientV2 {
		t.Fatalf("subprotocol %q", conn.Subprotocol())
	}
	sc, chans, reqs, err := ssh.NewClientConn(conn, "relay", e.legConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	go func() {
		for nc := range chans {
			nc.Reject(ssh.UnknownChannelType, "no")
		}
	}()
	events := make(chan string, 16)
	go func() {
		for r := range reqs {
			pr, err := tunnelproto.ParsePortForwardRequest(r.Payload)
			if err != nil || pr.AddressToBind != "127.0.0.1" {
				r.Reply(false, nil)
				continue
			}
			r.Reply(true, tunnelproto.MarshalPortForwardSuccess(pr.Port))
			events <- r.Type + ":" + strconvU(pr.Port)
		}
	}()
	return sc, events
}

func strconvU(p uint32) string { return strconv.FormatUint(uint64(p), 10) }

func expectEvent(t *testing.T, ch chan string, want string) {
	t.Helper()
	select {
	case got := <-ch:
		if got != want {
			t.Fatalf("event %q, want %q", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("no event, want %q", want)
	}
}

func TestV2ClientEndToEnd(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV2)
	hostTok := e.token(testTunnel, "host")
	port := e.echoPort()
	if ok, _ := h.register(tunnelproto.RequestTCPIPForward, port, hostTok); !ok {
		t.Fatal("register refused")
	}
	sc, events := e.v2Client(t)
	expectEvent(t, events, tunnelproto.RequestTCPIPForward+":"+strconvU(port))

	connTok := e.token(testTunnel, "connect")
	req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: port, OriginatorIP: "10.0.0.1", OriginatorPort: 4242, AccessToken: connTok}
	ch, reqs, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, req.Marshal())
	if err != nil {
		t.Fatalf("forwarded-tcpip: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	echoRoundTrip(t, ch, "hello over v2")
	// The relay refuses channel requests on a bridged channel, and the
	// channel carries on.
	for range 20 {
		if ok, err := ch.SendRequest("warren-test@example.com", true, nil); ok || err != nil {
			t.Fatalf("channel request: ok %v, err %v; want refused", ok, err)
		}
	}
	echoRoundTrip(t, ch, "and again")
	ch.Close()
	h.mu.Lock()
	if len(h.payloads) != 1 || h.payloads[0] != req {
		t.Errorf("host saw %+v, want %+v", h.payloads, req)
	}
	h.mu.Unlock()

	refused := func(name string, extra []byte) {
		t.Helper()
		_, _, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, extra)
		var oce *ssh.OpenChannelError
		if !errors.As(err, &oce) || oce.Reason != ssh.Prohibited || oce.Message != "administratively prohibited" {
			t.Errorf("%s: err = %v, want administratively prohibited", name, err)
		}
	}
	bad := req
	bad.Port = 1
	refused("unregistered port", bad.Marshal())
	bad = req
	bad.AccessToken = hostTok
	refused("host-scope token", bad.Marshal())
	bad.AccessToken = e.token("other", "connect")
	refused("other tunnel token", bad.Marshal())
	refused("four-field layout", req.MarshalStandard())
	if _, _, err := sc.OpenChannel("session", nil); err == nil {
		t.Error("session channel accepted")
	}

	// Ports added and cancelled later reach the client.
	if ok, _ := h.register(tunnelproto.RequestTCPIPForward, 7000, hostTok); !ok {
		t.Fatal("register 7000 refused")
	}
	expectEvent(t, events, tunnelproto.RequestTCPIPForward+":"+strconvU(7000))
	if ok, _ := h.register(tunnelproto.RequestCancelTCPIPForward, 7000, hostTok); !ok {
		t.Fatal("cancel 7000 refused")
	}
	expectEvent(t, events, tunnelproto.RequestCancelTCPIPForward+":"+strconvU(7000))
	bad = req
	bad.Port = 7000
	refused("cancelled port", bad.Marshal())
}

// TestHostReplacement checks the reason-11 signal a replaced host sees.
func TestHostReplacement(t *testing.T) {
	e := newEnv(t)
	old := e.dialHost(tunnelproto.SubprotocolHostV2)
	waitFor(t, "old host", func() bool { return e.relay.HostConnected(testTunnel, "") })
	cconn, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	defer cconn.Close()

	waitErr := make(chan error, 1)
	go func() { waitErr <- old.ssh.Wait() }()
	newHost := e.dialHost(tunnelproto.SubprotocolHostV2)
	var err2 error
	select {
	case err2 = <-waitErr:
	case <-time.After(5 * time.Second):
		t.Fatal("old host still connected")
	}
	t.Logf("old host Wait: %v", err2)
	if !strings.Contains(err2.Error(), "reason 11:") {
		t.Errorf("old host error %q lacks %q", err2, "reason 11:")
	}
	if websocket.CloseStatus(err2) != CloseStatusReplaced {
		t.Errorf("close status = %v, want %v", websocket.CloseStatus(err2), CloseStatusReplaced)
	}
	// The old host's client goes with it; the new host stays.
	readErr(t, cconn)
	if !e.relay.HostConnected(testTunnel, "") {
		t.Fatal("new host not connected")
	}
	if ok, _ := newHost.register(tunnelproto.RequestTCPIPForward, 1234, e.token(testTunnel, "host")); !ok {
		t.Fatal("new host unusable")
	}
}

func TestHostGoneClosesClients(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV2)
	if ok, _ := h.register(tunnelproto.RequestTCPIPForward, e.echoPort(), e.token(testTunnel, "host")); !ok {
		t.Fatal("register refused")
	}
	v1, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	defer v1.Close()
	v2, _ := e.v2Client(t)
	v2Done := make(chan error, 1)
	go func() { v2Done <- v2.Wait() }()

	h.ssh.Close()
	readErr(t, v1)
	select {
	case <-v2Done:
	case <-time.After(5 * time.Second):
		t.Fatal("V2 client still connected")
	}
	waitFor(t, "host unregistered", func() bool { return !e.relay.HostConnected(testTunnel, "") })
	_, resp, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("client after host left: resp %v err %v, want 404", resp, err)
	}
}

func TestCloseDisconnectsEverything(t *testing.T) {
	e := newEnv(t)
	h := e.dialHost(tunnelproto.SubprotocolHostV1)
	c, _, err := dialWS(testCtx(t), e.url("client", testTunnel), "Tunnel "+e.token(testTunnel, "connect"), tunnelproto.SubprotocolClientV1)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hostDone := make(chan struct{})
	go func() { h.ssh.Wait(); close(hostDone) }()
	// Read from the client all along, as a live peer does, so that it
	// answers the relay's close frame.
	clientErr := make(chan error, 1)
	go func() {
		buf := make([]byte, 512)
		for {
			if _, err := c.Read(buf); err != nil {
				clientErr <- err
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() { e.relay.Close(); e.relay.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("Close hung")
	}
	<-hostDone
	select {
	case <-clientErr:
	case <-time.After(5 * time.Second):
		t.Fatal("client socket still open after Close")
	}
	_, resp, err := dialWS(testCtx(t), e.url("host", testTunnel), "Tunnel "+e.token(testTunnel, "host"), tunnelproto.SubprotocolHostV2)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Close: resp %v err %v, want 503", resp, err)
	}
}
