package ssh

import (
	"bytes"
	"errors"
	"testing"
)

// TestConfirmData: data given to AcceptWithData arrives after the
// confirmation's standard fields and OpenChannelWithConfirm returns it; a
// plain Accept gives nil. Both with the none exchange and a standard one.
func TestConfirmData(t *testing.T) {
	for _, none := range []bool{true, false} {
		cc, sc := tcpPair(t)
		scfg := &ServerConfig{NoClientAuth: true}
		scfg.NoneKeyExchange = none
		for _, s := range testSigners(t) {
			scfg.AddHostKey(s)
		}
		type srv struct {
			conn *ServerConn
			err  error
		}
		done := make(chan srv, 1)
		go func() {
			conn, chans, reqs, err := NewServerConn(sc, scfg)
			if err != nil {
				done <- srv{err: err}
				return
			}
			go DiscardRequests(reqs)
			go func() {
				for nc := range chans {
					var ch Channel
					var err error
					if bytes.Equal(nc.ExtraData(), []byte("with")) {
						ch, _, err = AcceptWithData(nc, []byte{1})
					} else {
						ch, _, err = nc.Accept()
					}
					if err == nil {
						ch.Close()
					}
				}
			}()
			done <- srv{conn: conn}
		}()
		ccfg := &ClientConfig{User: "tunnel", HostKeyCallback: InsecureIgnoreHostKey()}
		ccfg.NoneKeyExchange = none
		conn, chans, reqs, err := NewClientConn(cc, "x", ccfg)
		if err != nil {
			t.Fatal(err)
		}
		client := NewClient(conn, chans, reqs)
		s := <-done
		if s.err != nil {
			t.Fatal(s.err)
		}
		_, _, data, err := OpenChannelWithConfirm(client, "x", []byte("with"))
		if err != nil || !bytes.Equal(data, []byte{1}) {
			t.Errorf("none=%v: with data: %v %x", none, err, data)
		}
		_, _, data, err = OpenChannelWithConfirm(client, "x", []byte("without"))
		if err != nil || len(data) != 0 {
			t.Errorf("none=%v: without data: %v %x", none, err, data)
		}
		client.Close()
		s.conn.Wait()
	}
	if _, _, err := AcceptWithData(nil, nil); !errors.Is(err, errNotForkChannel) {
		t.Errorf("AcceptWithData(nil): %v", err)
	}
}
