package turndial

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/pion/dtls/v3"
	"github.com/pion/dtls/v3/pkg/crypto/selfsign"
)

// CIDSize is the length of the connection ID the server assigns (RFC 9146).
// The CID lets a session survive its TURN allocation being replaced.
const CIDSize = 8

// ServerIdentityHint is the PSK identity hint the server sends.
const ServerIdentityHint = "warren"

// ErrUnknownIdentity is returned by the server's PSK callback for an identity
// it has no key for; it aborts the handshake.
var ErrUnknownIdentity = errors.New("unknown PSK identity")

// ErrNoProfile is returned by ServerOptions when neither PSK keys nor the
// compat profile are configured.
var ErrNoProfile = errors.New("no PSK keys configured and compat mode off: nobody could connect")

// ServerProfile says which clients a server accepts.
type ServerProfile struct {
	// Keys maps PSK identity → key. Empty means no PSK clients.
	Keys map[string][]byte
	// Compat also accepts the unauthenticated prototype profile (docs/protocols/turn-overlay.md §2.2).
	// Default false.
	Compat bool
	// Protocols are the ALPN protocol ids the server selects from (the
	// first one the client also offers wins). Empty: no ALPN, every client
	// gets the raw overlay.
	Protocols []string
}

// ServerOptions builds the DTLS server options. With Keys and Compat both
// set, both suites are offered and each client gets the one it asked for.
func ServerOptions(p ServerProfile) ([]dtls.ServerOption, error) {
	if len(p.Keys) == 0 && !p.Compat {
		return nil, ErrNoProfile
	}
	opts := []dtls.ServerOption{
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.RandomCIDGenerator(CIDSize)),
	}
	var suites []dtls.CipherSuiteID
	if len(p.Keys) > 0 {
		keys := p.Keys
		suites = append(suites, dtls.TLS_PSK_WITH_AES_128_GCM_SHA256)
		opts = append(opts,
			dtls.WithPSK(func(identity []byte) ([]byte, error) {
				if k, ok := keys[string(identity)]; ok {
					return k, nil
				}
				return nil, fmt.Errorf("%w %q", ErrUnknownIdentity, identity)
			}),
			dtls.WithPSKIdentityHint([]byte(ServerIdentityHint)))
	}
	if p.Compat {
		cert, err := selfsign.GenerateSelfSigned()
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		suites = append(suites, dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
		opts = append(opts, dtls.WithCertificates(cert))
	}
	if len(p.Protocols) > 0 {
		opts = append(opts, dtls.WithSupportedProtocols(p.Protocols...))
	}
	return append(opts, dtls.WithCipherSuites(suites...)), nil
}

// ClientProfile says how a client authenticates to tunnel-server.
type ClientProfile struct {
	// Compat selects the prototype's unauthenticated profile; Identity and
	// Key are then unused. Default false (PSK).
	Compat bool
	// Identity is the PSK identity. No default: callers fill in
	// overlay.DefaultIdentity.
	Identity string
	// Key is the PSK.
	Key []byte
	// Protocols are the ALPN protocol ids offered, in preference order
	// (PSK profile only: the compat profile stays the prototype's, byte for
	// byte). A server that selects none leaves NegotiatedProtocol empty.
	Protocols []string
}

// Name is "compat" or "psk", as logs and probe results name the profile.
func (p ClientProfile) Name() string {
	if p.Compat {
		return "compat"
	}
	return "psk"
}

// ClientOptions returns the DTLS client options of p.
func ClientOptions(p ClientProfile) ([]dtls.ClientOption, error) {
	if p.Compat {
		return ClientCompatOptions()
	}
	opts := ClientPSKOptions(p.Identity, p.Key)
	if len(p.Protocols) > 0 {
		opts = append(opts, dtls.WithSupportedProtocols(p.Protocols...))
	}
	return opts, nil
}

// ClientPSKOptions is the authenticated client profile (docs/protocols/turn-overlay.md §2.3).
func ClientPSKOptions(identity string, key []byte) []dtls.ClientOption {
	return []dtls.ClientOption{
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()),
		dtls.WithCipherSuites(dtls.TLS_PSK_WITH_AES_128_GCM_SHA256),
		dtls.WithPSK(func([]byte) ([]byte, error) { return key, nil }),
		dtls.WithPSKIdentityHint([]byte(identity)),
	}
}

// ClientCompatOptions is the prototype's unauthenticated client profile
// (docs/protocols/turn-overlay.md §2.2): a throwaway self-signed certificate, no verification.
func ClientCompatOptions() ([]dtls.ClientOption, error) {
	cert, err := selfsign.GenerateSelfSigned()
	if err != nil {
		return nil, fmt.Errorf("self-signed certificate: %w", err)
	}
	return []dtls.ClientOption{
		dtls.WithCertificates(cert),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithCipherSuites(dtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
		dtls.WithConnectionIDGenerator(dtls.OnlySendCIDGenerator()),
	}, nil
}

// Handshake runs a DTLS client over pc to peer and completes the handshake
// (lazy in dtls/v3) before ctx ends; callers bound it with a deadline on
// ctx. On failure the conn is closed, and with it pc.
func Handshake(ctx context.Context, pc net.PacketConn, peer net.Addr, opts []dtls.ClientOption) (*dtls.Conn, error) {
	dc, err := dtls.ClientWithOptions(pc, peer, opts...)
	if err != nil {
		return nil, fmt.Errorf("dtls client: %w", err)
	}
	if err := dc.HandshakeContext(ctx); err != nil {
		dc.Close()
		return nil, err
	}
	return dc, nil
}
