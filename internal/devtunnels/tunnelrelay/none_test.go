package tunnelrelay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/warrenhq/warren/internal/devtunnels/tunnelproto"
	"github.com/warrenhq/warren/internal/sshfork/ssh"
)

func negotiatedKex(t *testing.T, c ssh.Conn) string {
	t.Helper()
	a, ok := c.(ssh.AlgorithmsConnMetadata)
	if !ok {
		t.Fatalf("%T has no algorithms", c)
	}
	return a.Algorithms().KeyExchange
}

// TestNoneKeyExchangeV2Legs runs a V2 host and a V2 client through the
// relay with and without the none key exchange on either leg: none where
// the peer offers it (warren's tunnel-host and tunnel-client, the
// TypeScript SDK), standard where it does not (older warren), and the
// data gets through either way, in large packets.
func TestNoneKeyExchangeV2Legs(t *testing.T) {
	for _, tc := range []struct{ hostNone, clientNone bool }{{true, true}, {true, false}, {false, true}} {
		t.Run(fmt.Sprintf("host=%v/client=%v", tc.hostNone, tc.clientNone), func(t *testing.T) {
			e := newEnv(t)
			want := func(none bool) string {
				if none {
					return ssh.KeyExchangeNone
				}
				return "standard"
			}
			e.none = tc.hostNone
			h := e.dialHost(tunnelproto.SubprotocolHostV2)
			if got := negotiatedKex(t, h.ssh); (got == ssh.KeyExchangeNone) != tc.hostNone {
				t.Fatalf("host leg negotiated %q", got)
			}
			port := e.echoPort()
			if ok, _ := h.register(tunnelproto.RequestTCPIPForward, port, e.token(testTunnel, "host")); !ok {
				t.Fatal("register refused")
			}
			e.none = tc.clientNone
			sc, events := e.v2Client(t)
			if got := negotiatedKex(t, sc); (got == ssh.KeyExchangeNone) != tc.clientNone {
				t.Fatalf("client leg negotiated %q", got)
			}
			expectEvent(t, events, tunnelproto.RequestTCPIPForward+":"+strconvU(port))
			req := tunnelproto.PortRelayConnectRequest{Host: "127.0.0.1", Port: port, AccessToken: e.token(testTunnel, "connect")}
			ch, reqs, err := sc.OpenChannel(tunnelproto.ChannelForwardedTCPIP, req.Marshal())
			if err != nil {
				t.Fatalf("forwarded-tcpip: %v", err)
			}
			go ssh.DiscardRequests(reqs)
			big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
			errc := make(chan error, 1)
			go func() { _, err := ch.Write(big); errc <- err }()
			got := make([]byte, len(big))
			if _, err := io.ReadFull(ch, got); err != nil {
				t.Fatalf("read echo: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, big) {
				t.Fatal("echo differs")
			}
			ch.Close()
			for role, none := range map[string]bool{roleHost: tc.hostNone, roleClient: tc.clientNone} {
				if v := e.metricValue("warren_relay_tunnel_ssh_sessions_total", "role", role, "kex", want(none)); v != 1 {
					t.Errorf("ssh sessions of %s with kex %s = %v, want 1", role, want(none), v)
				}
			}
		})
	}
}

// TestRelayHostKeyForDevTunnelsSSH: a client that knows only the host key
// algorithms dev-tunnels-ssh 3.12.42 has (no ed25519) completes a standard
// key exchange with the relay, on its ECDSA P-384 key.
func TestRelayHostKeyForDevTunnelsSSH(t *testing.T) {
	e := newEnv(t)
	conn, _, err := dialWS(testCtx(t), e.url("host", testTunnel), "Tunnel "+e.token(testTunnel, "host"), tunnelproto.SubprotocolHostV2)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig()
	cfg.HostKeyAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA256}
	var hostKey ssh.PublicKey
	cfg.HostKeyCallback = func(_ string, _ net.Addr, k ssh.PublicKey) error { hostKey = k; return nil }
	sc, _, reqs, err := ssh.NewClientConn(conn, "relay", cfg)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	if hostKey == nil || hostKey.Type() != ssh.KeyAlgoECDSA384 {
		t.Fatalf("host key %v", hostKey)
	}
}

func TestNoneAllowed(t *testing.T) {
	for _, tc := range []struct {
		url      string
		insecure bool
		want     bool
		err      bool
	}{
		{"wss://relay.example/relay/host/t", false, true, false},
		{"https://relay.example", false, true, false},
		{"ws://relay.example/relay/host/t", false, false, false},
		{"ws://relay.example/relay/host/t", true, true, false},
		{"ws://127.0.0.1:8080/relay/client/t", false, true, false},
		{"ws://127.9.9.9:8080/", false, true, false},
		{"ws://[::1]:8080/", false, true, false},
		{"http://localhost:8080/", false, true, false},
		{"ws://10.0.0.1/", false, false, false},
		{"ftp://relay.example/", true, false, true},
		{"ws://%zz", false, false, true},
	} {
		got, err := NoneAllowed(tc.url, tc.insecure)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("NoneAllowed(%q, %v) = %v, %v; want %v, error %v", tc.url, tc.insecure, got, err, tc.want, tc.err)
		}
	}
}

// TestSSHHandshakeNoneRefused: a side that did not offer none (plain ws to
// a remote relay) meets a relay that offers only none, as a dev-tunnels-ssh
// V1 session would: the error says why and what to do.
func TestSSHHandshakeNoneRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("SSH-2.0-dev-tunnels-ssh_3.12.42\r\n"))
		none := []string{"none"}
		init := struct {
			Cookie                         [16]byte `sshtype:"20"`
			Kex, HostKey, C2S, S2C, M1, M2 []string
			Comp1, Comp2, Lang1, Lang2     []string
			FirstKexFollows                bool
			Reserved                       uint32
		}{Kex: none, HostKey: none, C2S: none, S2C: none, M1: none, M2: none, Comp1: none, Comp2: none}
		payload := ssh.Marshal(&init)
		padding := 8 - (5+len(payload))%8
		if padding < 4 {
			padding += 8
		}
		pkt := binary.BigEndian.AppendUint32(nil, uint32(1+len(payload)+padding))
		pkt = append(pkt, byte(padding))
		pkt = append(pkt, payload...)
		pkt = append(pkt, make([]byte, padding)...)
		_, _ = c.Write(pkt)
		_, _ = io.Copy(io.Discard, c)
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_, _, _, err = SSHHandshake(c, "relay", clientConfig())
	if !errors.Is(err, ErrNoneRefused) {
		t.Fatalf("err = %v, want ErrNoneRefused", err)
	}
	<-served
}
