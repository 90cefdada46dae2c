package turndial

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/protocol"
	"github.com/pion/dtls/v3/pkg/protocol/alert"
	"github.com/pion/dtls/v3/pkg/protocol/recordlayer"
	"github.com/pion/logging"
)

// ErrKeyMismatch is the server's verdict on a PSK client whose encrypted
// Finished does not decrypt: the client holds another key for its identity.
var ErrKeyMismatch = errors.New("client's PSK differs from the server's key for its identity")

// Listener is a DTLS listener that refuses a PSK client with a wrong key
// at once. DTLS drops a record that fails to decrypt without a word (RFC
// 6347 §4.1.2.7), so with a wrong key both sides would wait for their
// handshake timeouts. This listener notices the first record of a
// handshake that does not decrypt (pion reports it only to its logger),
// sends the fatal bad_record_mac alert the RFC allows for it, and lets the
// caller end the handshake.
type Listener struct {
	net.Listener
	factory *watchFactory
	raw     atomic.Pointer[rawSocket]
}

type rawSocket struct{ syscall.RawConn }

// Listen binds a DTLS listener on laddr with opts.
func Listen(laddr *net.UDPAddr, opts []dtls.ServerOption) (*Listener, error) {
	l := &Listener{factory: &watchFactory{}}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		// The raw socket is kept to write the alert record from the
		// listener's own address, the one the client's TURN permission
		// and channel are for.
		l.raw.Store(&rawSocket{c})
		return nil
	}}
	all := append(append([]dtls.ServerOption{}, opts...), dtls.WithLoggerFactory(l.factory), dtls.WithListenConfig(lc))
	ln, err := dtls.ListenWithOptions("udp", laddr, all...)
	if err != nil {
		return nil, err
	}
	l.Listener = ln
	return l, nil
}

// Accept returns the next connection and its mismatch watch.
func (l *Listener) Accept() (*dtls.Conn, *KeyWatch, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, nil, err
	}
	// pion creates the conn, and with it the conn's logger, inside Accept;
	// Accept is called from one goroutine, so the last logger is this conn's.
	w := l.factory.take()
	if w == nil {
		w = &KeyWatch{mismatch: make(chan struct{})}
	}
	w.l, w.raddr = l, c.RemoteAddr()
	return c.(*dtls.Conn), w, nil
}

// KeyWatch reports, for one connection, a record that failed to decrypt
// before the handshake completed.
type KeyWatch struct {
	l        *Listener
	raddr    net.Addr
	once     sync.Once
	mismatch chan struct{}
	done     atomic.Bool
}

// Mismatch is closed when the client's first encrypted record does not
// decrypt.
func (w *KeyWatch) Mismatch() <-chan struct{} { return w.mismatch }

// HandshakeDone stops the watch: after the handshake a record that fails
// to decrypt is noise (or an attack) to be dropped, not a verdict.
func (w *KeyWatch) HandshakeDone() { w.done.Store(true) }

// Refuse sends the client a fatal bad_record_mac alert (RFC 6347 §4.1.2.7)
// in the clear: the client cannot read anything encrypted with the
// server's key, which is the point.
func (w *KeyWatch) Refuse() error {
	ua, ok := w.raddr.(*net.UDPAddr)
	raw := w.l.raw.Load()
	if !ok || raw == nil {
		return fmt.Errorf("no raw socket to %v", w.raddr)
	}
	rec := &recordlayer.RecordLayer{
		// A sequence number far above the few the handshake used passes
		// the client's replay window.
		Header:  recordlayer.Header{Version: protocol.Version1_2, Epoch: 0, SequenceNumber: 1 << 40},
		Content: &alert.Alert{Level: alert.Fatal, Description: alert.BadRecordMac},
	}
	pkt, err := rec.Marshal()
	if err != nil {
		return err
	}
	return sendTo(raw.RawConn, pkt, ua)
}

func (w *KeyWatch) report() {
	if !w.done.Load() {
		w.once.Do(func() { close(w.mismatch) })
	}
}

// watchFactory hands every conn pion creates a logger that reports
// decryption failures to that conn's KeyWatch.
type watchFactory struct {
	mu   sync.Mutex
	last *KeyWatch
}

func (f *watchFactory) NewLogger(string) logging.LeveledLogger {
	w := &KeyWatch{mismatch: make(chan struct{})}
	f.mu.Lock()
	f.last = w
	f.mu.Unlock()
	return &watchLogger{w: w}
}

func (f *watchFactory) take() *KeyWatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.last
	f.last = nil
	return w
}

// watchLogger discards pion's log lines but the one saying a record did
// not decrypt ("%s: decrypt failed: %s" in pion/dtls v3 conn.go; the
// e2e and turnserver tests fail if an upgrade rewords it).
type watchLogger struct{ w *KeyWatch }

func (l *watchLogger) Debugf(format string, _ ...any) {
	if strings.Contains(format, "decrypt failed") {
		l.w.report()
	}
}
func (l *watchLogger) Trace(string)          {}
func (l *watchLogger) Tracef(string, ...any) {}
func (l *watchLogger) Debug(string)          {}
func (l *watchLogger) Info(string)           {}
func (l *watchLogger) Infof(string, ...any)  {}
func (l *watchLogger) Warn(string)           {}
func (l *watchLogger) Warnf(string, ...any)  {}
func (l *watchLogger) Error(string)          {}
func (l *watchLogger) Errorf(string, ...any) {}

// AlertIs says whether err is pion's error for receiving the fatal alert d.
// pion keeps its alert error type unexported, so this compares with the
// text pion formats it with.
func AlertIs(err error, d alert.Description) bool {
	return err != nil && strings.Contains(err.Error(), "alert: "+(&alert.Alert{Level: alert.Fatal, Description: d}).String())
}

// ErrPSKRefused is the client's side of a refused PSK: tunnel-server
// answered the handshake with a fatal alert.
var ErrPSKRefused = errors.New("tunnel-server refused the PSK")

// ExplainHandshake turns the alerts tunnel-server refuses a PSK client
// with into an error naming the PSK settings; other errors pass through.
// bad_record_mac is a wrong key (Listener.Refuse); internal_error is what
// pion answers when the server's PSK callback fails, i.e. an unknown
// identity.
func ExplainHandshake(err error, p ClientProfile) error {
	if p.Compat || err == nil {
		return err
	}
	switch {
	case AlertIs(err, alert.BadRecordMac):
		return fmt.Errorf("%w: its key for psk_identity %q differs from this psk (turn.psk or --psk-file): %w", ErrPSKRefused, p.Identity, err)
	case AlertIs(err, alert.InternalError):
		return fmt.Errorf("%w: it has no key for psk_identity %q (turn.psk_identity, or the identity in --psk-file): %w", ErrPSKRefused, p.Identity, err)
	}
	return err
}
