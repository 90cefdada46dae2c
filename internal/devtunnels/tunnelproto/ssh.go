package tunnelproto

import (
	"encoding/binary"
	"errors"
)

// Relay WebSocket subprotocols (docs/protocols/devtunnels.md §2.3).
const (
	SubprotocolHostV1   = "tunnel-relay-host"
	SubprotocolHostV2   = "tunnel-relay-host-v2-dev"
	SubprotocolClientV1 = "tunnel-relay-client"
	SubprotocolClientV2 = "tunnel-relay-client-v2-dev"
)

// SSH channel types and global request names of the relay sessions
// (docs/protocols/devtunnels.md §2.4–2.6).
const (
	// ChannelClientSSHSessionStream is what the relay opens on the host
	// session for every V1 client; it carries the client's nested SSH.
	ChannelClientSSHSessionStream = "client-ssh-session-stream"
	ChannelForwardedTCPIP         = "forwarded-tcpip"
	ChannelDirectTCPIP            = "direct-tcpip"
	ChannelSession                = "session"

	RequestTCPIPForward       = "tcpip-forward"
	RequestCancelTCPIPForward = "cancel-tcpip-forward"
	RequestKeepAlive          = "keepalive@openssh.com"
	RequestRefreshPorts       = "RefreshPorts"
)

// DisconnectTooManyConnections is the SSH disconnect reason
// (SSH_DISCONNECT_TOO_MANY_CONNECTIONS, RFC 4250 §4.2.2) that tells a host it
// was replaced by a newer host of the same tunnel.
const DisconnectTooManyConnections = 11

// ErrShortPayload is returned by the payload decoders when the bytes end
// before the last field does.
var ErrShortPayload = errors.New("devtunnels: SSH payload too short")

// The decoders below ignore bytes after the last field they know: peers may
// append fields (the TS SDK does so on other messages), and the relay only
// needs the ones listed.

// PortForwardRequest is the payload of a standard tcpip-forward or
// cancel-tcpip-forward global request (RFC 4254 §7.1): what the relay sends
// to a V2 client and a V1 host sends to its nested client.
type PortForwardRequest struct {
	AddressToBind string
	Port          uint32
}

// Marshal returns the SSH wire encoding of r.
func (r PortForwardRequest) Marshal() []byte {
	var b []byte
	b = appendString(b, r.AddressToBind)
	b = appendUint32(b, r.Port)
	return b
}

// ParsePortForwardRequest decodes a tcpip-forward payload.
func ParsePortForwardRequest(p []byte) (PortForwardRequest, error) {
	var r PortForwardRequest
	var ok bool
	if r.AddressToBind, p, ok = parseString(p); !ok {
		return r, ErrShortPayload
	}
	if r.Port, _, ok = parseUint32(p); !ok {
		return r, ErrShortPayload
	}
	return r, nil
}

// MarshalPortForwardSuccess returns the reply payload of a successful
// tcpip-forward: the bound port.
func MarshalPortForwardSuccess(port uint32) []byte {
	return appendUint32(nil, port)
}

// ParsePortForwardSuccess decodes a tcpip-forward reply payload.
func ParsePortForwardSuccess(p []byte) (uint32, error) {
	port, _, ok := parseUint32(p)
	if !ok {
		return 0, ErrShortPayload
	}
	return port, nil
}

// PortRelayRequest is the payload of the V2 host's tcpip-forward and
// cancel-tcpip-forward global requests (docs/protocols/devtunnels.md §2.6): the standard fields plus the
// host's access token.
type PortRelayRequest struct {
	AddressToBind string
	Port          uint32
	AccessToken   string
}

// Marshal returns the SSH wire encoding of r.
func (r PortRelayRequest) Marshal() []byte {
	var b []byte
	b = appendString(b, r.AddressToBind)
	b = appendUint32(b, r.Port)
	b = appendString(b, r.AccessToken)
	return b
}

// ParsePortRelayRequest decodes a PortRelayRequest. All three fields are
// required.
func ParsePortRelayRequest(p []byte) (PortRelayRequest, error) {
	var r PortRelayRequest
	var ok bool
	if r.AddressToBind, p, ok = parseString(p); !ok {
		return r, ErrShortPayload
	}
	if r.Port, p, ok = parseUint32(p); !ok {
		return r, ErrShortPayload
	}
	if r.AccessToken, _, ok = parseString(p); !ok {
		return r, ErrShortPayload
	}
	return r, nil
}

// PortRelayConnectRequest is the extra data of a V2 forwarded-tcpip channel
// open (docs/protocols/devtunnels.md §2.6), client → relay and relay → host: the four standard fields
// (RFC 4254 §7.2) plus an access token and the E2EE flag.
type PortRelayConnectRequest struct {
	Host                     string
	Port                     uint32
	OriginatorIP             string
	OriginatorPort           uint32
	AccessToken              string
	IsE2EEncryptionRequested bool
}

// Marshal returns the six-field SSH wire encoding of r.
func (r PortRelayConnectRequest) Marshal() []byte {
	b := r.marshalStandard()
	b = appendString(b, r.AccessToken)
	return appendBool(b, r.IsE2EEncryptionRequested)
}

// MarshalStandard returns the four-field (RFC 4254) encoding of r, dropping
// AccessToken and IsE2EEncryptionRequested: the V1 forwarded-tcpip layout.
func (r PortRelayConnectRequest) MarshalStandard() []byte {
	return r.marshalStandard()
}

func (r PortRelayConnectRequest) marshalStandard() []byte {
	var b []byte
	b = appendString(b, r.Host)
	b = appendUint32(b, r.Port)
	b = appendString(b, r.OriginatorIP)
	return appendUint32(b, r.OriginatorPort)
}

// ParsePortRelayConnectRequest decodes forwarded-tcpip extra data. It tries
// the six-field V2 layout and, if that fails, falls back to the four-field
// standard layout, as the spec requires of hosts; full reports which layout
// was read (with the fallback, AccessToken is "" and the flag false).
func ParsePortRelayConnectRequest(p []byte) (r PortRelayConnectRequest, full bool, err error) {
	var ok bool
	rest := p
	if r.Host, rest, ok = parseString(rest); !ok {
		return PortRelayConnectRequest{}, false, ErrShortPayload
	}
	if r.Port, rest, ok = parseUint32(rest); !ok {
		return PortRelayConnectRequest{}, false, ErrShortPayload
	}
	if r.OriginatorIP, rest, ok = parseString(rest); !ok {
		return PortRelayConnectRequest{}, false, ErrShortPayload
	}
	if r.OriginatorPort, rest, ok = parseUint32(rest); !ok {
		return PortRelayConnectRequest{}, false, ErrShortPayload
	}
	tok, rest, ok := parseString(rest)
	if !ok {
		return r, false, nil
	}
	e2e, _, ok := parseBool(rest)
	if !ok {
		return r, false, nil
	}
	r.AccessToken, r.IsE2EEncryptionRequested = tok, e2e
	return r, true, nil
}

func appendUint32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendString(b []byte, s string) []byte {
	b = appendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func parseUint32(p []byte) (uint32, []byte, bool) {
	if len(p) < 4 {
		return 0, nil, false
	}
	return binary.BigEndian.Uint32(p), p[4:], true
}

func parseString(p []byte) (string, []byte, bool) {
	n, rest, ok := parseUint32(p)
	if !ok || uint64(n) > uint64(len(rest)) {
		return "", nil, false
	}
	return string(rest[:n]), rest[n:], true
}

// parseBool follows RFC 4251 §5: any non-zero byte is true.
func parseBool(p []byte) (bool, []byte, bool) {
	if len(p) < 1 {
		return false, nil, false
	}
	return p[0] != 0, p[1:], true
}

// PortRelayConnectResponse is what follows the standard fields of a V2
// forwarded-tcpip channel-open confirmation (docs/protocols/devtunnels.md
// §2.6), host → relay and relay → client: whether the host enabled
// end-to-end encryption on the stream. dev-tunnels-ssh clients fail to read
// a confirmation without it.
type PortRelayConnectResponse struct {
	IsE2EEncryptionEnabled bool
}

// Marshal returns the confirmation's extra data for r: one boolean byte.
func (r PortRelayConnectResponse) Marshal() []byte {
	return appendBool(nil, r.IsE2EEncryptionEnabled)
}

// ParsePortRelayConnectResponse decodes a confirmation's extra data. None
// at all (a plain SSH confirmation, as older warren hosts and x/crypto send)
// reads as E2E off; bytes after the flag are ignored, as the TS SDK does,
// since later protocol versions may append fields.
func ParsePortRelayConnectResponse(p []byte) PortRelayConnectResponse {
	e2e, _, _ := parseBool(p)
	return PortRelayConnectResponse{IsE2EEncryptionEnabled: e2e}
}
