package wingrtc

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	wp "github.com/warrenhq/warren/internal/wing/wingproto"
)

// Options shape the WebRTC stack of one side.
type Options struct {
	// Networks limits host candidates to these prefixes. Default: every
	// address of the machine, loopback included.
	Networks []netip.Prefix
	// RelayOnly uses TURN relay candidates only (ICE transport policy
	// "relay"). Default false.
	RelayOnly bool
}

// ICE timeouts: a terminal that stalls for 4 s has lost its path; the
// session goes back to the relay rather than wait for ICE's defaults.
const (
	disconnectedTimeout = 4 * time.Second
	failedTimeout       = 8 * time.Second
	keepAlive           = time.Second
)

// NewAPI returns a pion API with o's settings.
func NewAPI(o Options) *webrtc.API {
	var se webrtc.SettingEngine
	se.SetICETimeouts(disconnectedTimeout, failedTimeout, keepAlive)
	// No mDNS: it would bind multicast sockets and obfuscate nothing a
	// session needs; the candidates travel encrypted anyway.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// Terminal output comes in bursts of megabytes: a receive window of
	// 8 MiB instead of 1 keeps a fast path busy. The payload is already
	// sealed (and DTLS-protected), so SCTP's CRC32c is skipped where the
	// peer agrees (negotiated in the SDP).
	se.SetSCTPMaxReceiveBufferSize(8 << 20)
	se.EnableSCTPZeroChecksum(true)
	if len(o.Networks) > 0 {
		nets := o.Networks
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			if !ok {
				return false
			}
			a = a.Unmap()
			for _, p := range nets {
				if p.Contains(a) {
					return true
				}
			}
			return false
		})
	}
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}

// Configuration is a PeerConnection configuration with servers.
func Configuration(servers []wp.ICEServer, relayOnly bool) webrtc.Configuration {
	var c webrtc.Configuration
	for _, s := range servers {
		c.ICEServers = append(c.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	if relayOnly {
		c.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return c
}

// ErrGatherTimeout: ICE candidate gathering did not finish in time.
var ErrGatherTimeout = errors.New("ICE candidate gathering did not finish")

// WaitGathered waits for pc's candidate gathering to finish (signalling
// carries every candidate in the SDP, with no trickle).
func WaitGathered(ctx context.Context, pc *webrtc.PeerConnection, done <-chan struct{}, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return ErrGatherTimeout
	}
}

// Flow control of DataChannel writes: a writer waits while more than
// highWater bytes are queued (sent and not yet acknowledged included).
// The window is what keeps a fast path busy; what it holds may be lost
// with a dying channel, so the wing keeps more than that to resend
// (wingagent's resend buffer).
const (
	highWater = 4 << 20
	lowWater  = 1 << 20
)

// ErrChannelClosed: the DataChannel closed under a writer.
var ErrChannelClosed = errors.New("direct channel closed")

// Sender writes to one DataChannel with flow control.
type Sender struct {
	dc   *webrtc.DataChannel
	low  chan struct{}
	dead <-chan struct{}
}

// NewSender wraps dc; dead is closed when the channel is given up.
func NewSender(dc *webrtc.DataChannel, dead <-chan struct{}) *Sender {
	s := &Sender{dc: dc, low: make(chan struct{}, 1), dead: dead}
	dc.SetBufferedAmountLowThreshold(lowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case s.low <- struct{}{}:
		default:
		}
	})
	return s
}

// Send writes one text message, waiting for room first.
func (s *Sender) Send(b []byte) error { return s.send(b, true) }

// SendBinary writes one binary message, waiting for room first; b may be
// reused once it returns (the SCTP stream copies it).
func (s *Sender) SendBinary(b []byte) error { return s.send(b, false) }

func (s *Sender) send(b []byte, text bool) error {
	for s.dc.BufferedAmount() > highWater {
		select {
		case <-s.low:
		case <-s.dead:
			return ErrChannelClosed
		case <-time.After(50 * time.Millisecond):
			// The low event is edge-triggered; look again now and then.
		}
	}
	select {
	case <-s.dead:
		return ErrChannelClosed
	default:
	}
	var err error
	if text {
		err = s.dc.SendText(string(b))
	} else {
		err = s.dc.Send(b)
	}
	if err != nil {
		return errors.Join(ErrChannelClosed, err)
	}
	return nil
}
