package wsconn_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"testing"

	"github.com/warrenhq/warren/internal/sshfork/ssh"
	"github.com/warrenhq/warren/internal/transport/wsconn"
)

// TestSSHOverWebSocket runs a real SSH handshake and channel through the
// adapter, the use it exists for. It also shows SSH's own per-channel EOF
// doing the half-close that the WebSocket cannot.
func TestSSHOverWebSocket(t *testing.T) {
	t.Parallel()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}

	srv := newServer(t, false, func(c *wsconn.Conn) {
		cfg := &ssh.ServerConfig{NoClientAuth: true}
		cfg.AddHostKey(hostKey)
		sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
		if err != nil {
			t.Errorf("server handshake: %v", err)
			return
		}
		defer sc.Close()
		go ssh.DiscardRequests(reqs)
		for nc := range chans {
			if nc.ChannelType() != "echo" {
				nc.Reject(ssh.UnknownChannelType, "")
				continue
			}
			ch, creqs, err := nc.Accept()
			if err != nil {
				t.Errorf("accept channel: %v", err)
				return
			}
			go ssh.DiscardRequests(creqs)
			// Echo until the client's EOF, answer, then close.
			b, _ := io.ReadAll(ch)
			ch.Write(append([]byte("echo: "), b...))
			ch.Close()
		}
	})
	c := dial(t, srv, nil)

	cc, chans, reqs, err := ssh.NewClientConn(c, c.RemoteAddr().String(), &ssh.ClientConfig{
		User:            "warren",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()

	ch, creqs, err := client.OpenChannel("echo", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(creqs)
	if _, err := ch.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := ch.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(ch)
	if err != nil || string(got) != "echo: hello" {
		t.Fatalf("channel read %q, %v", got, err)
	}
}
