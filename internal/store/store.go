package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Sentinel errors. Wrapped errors carry the operation and key for logs.
var (
	// ErrNotFound: the tunnel, port, endpoint or key does not exist (for a
	// port or endpoint write: its tunnel does not exist).
	ErrNotFound = errors.New("store: not found")
	// ErrExists: the id, or another unique field such as a tunnel name, is
	// already taken.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid: the value cannot be stored (empty key, port 0, malformed
	// JSON, text that is not UTF-8 or holds NUL). Nothing was written.
	ErrInvalid = errors.New("store: invalid value")
	// ErrUnavailable: the database could not be reached or dropped the
	// connection (a PostgreSQL restart, say); the request may be retried.
	// Whether a write that failed so took effect is unknown.
	ErrUnavailable = errors.New("store: database unavailable")
)

// TimePrecision is the resolution every backend keeps: times are truncated
// to it. Microseconds is what PostgreSQL's timestamptz holds, so callers see
// the same values whichever backend runs.
const TimePrecision = time.Microsecond

// Time returns t as a store returns it: in UTC, truncated to TimePrecision.
// Backends normalise with it; callers may too, to compare with stored values.
func Time(t time.Time) time.Time {
	return t.UTC().Truncate(TimePrecision)
}

// Tunnel is a Dev Tunnels tunnel as the relay keeps it.
type Tunnel struct {
	ID          string // tunnelId, unique
	Name        string // unique when non-empty; callers default it to ID
	Domain      string // with Name, the tunnel can be found as "name.domain"
	Description string
	Labels      []string
	// Options and AccessControl are opaque JSON documents kept exactly as
	// the client sent them; nil means absent.
	Options       json.RawMessage
	AccessControl json.RawMessage
	Created       time.Time
	Updated       time.Time
	Expiration    *time.Time // nil: never expires
}

// Port is a port of a tunnel, unique by (TunnelID, Number).
type Port struct {
	TunnelID      string
	Number        uint16 // 1-65535
	Name          string
	Description   string
	Protocol      string // "auto", "http", "https", "ssh", ...
	SSHUser       string
	Labels        []string
	IsDefault     bool
	Options       json.RawMessage // opaque JSON, nil means absent
	AccessControl json.RawMessage // opaque JSON, nil means absent
	Created       time.Time
	Updated       time.Time
}

// Endpoint is a host's registration on a tunnel, unique by (TunnelID, ID).
type Endpoint struct {
	TunnelID       string
	ID             string // "<hostId>-relay"
	HostID         string
	ConnectionMode string // "TunnelRelay"
	HostPublicKeys []string
	// Node names the relay node holding the host's connection, so a node
	// can drop the endpoints it left behind when it restarts.
	Node    string
	Updated time.Time
}

// APIKey is an operator API key. The secret itself is never stored, only
// Hash, which the caller computes (see package apikey).
type APIKey struct {
	ID        string // public id, unique
	Name      string
	Hash      []byte
	Scopes    []string // "tunnels", "tickets", "wings"
	Created   time.Time
	RevokedAt *time.Time // nil while the key is active
}

// SigningKey is a token signing key. Keys rotate: the newest key that is not
// retired signs; retired keys still verify until they are deleted.
type SigningKey struct {
	ID        string
	Secret    []byte
	Created   time.Time
	RetiredAt *time.Time // nil while the key may sign
}

// WingOwner says which user a wing id belongs to: the user whose wing token
// first registered it. The relay refuses other users' wings under that id,
// so a wing id cannot be taken over by registering it from another account.
type WingOwner struct {
	WingID  string // the machine wing_id, unique
	UserID  string // the owner
	Created time.Time
}

// Store is relay-server's persistence. See the package documentation for the
// rules every method follows; each method's comment adds its own.
type Store interface {
	// CreateTunnel stores a new tunnel. ErrExists if its ID, or its
	// non-empty Name, is taken.
	CreateTunnel(ctx context.Context, t *Tunnel) error
	// GetTunnel returns the tunnel with this ID, or ErrNotFound.
	GetTunnel(ctx context.Context, id string) (*Tunnel, error)
	// FindTunnel resolves a reference as a client may give it: a tunnel
	// ID; else a Name; else "name.domain" of a tunnel with both set (should
	// two match, as "a.b"+"c" and "a"+"b.c" do, the longer Name wins). The
	// match is exact (case-sensitive). ErrNotFound if nothing matches.
	FindTunnel(ctx context.Context, ref string) (*Tunnel, error)
	// ListTunnels returns every tunnel, ordered by ID.
	ListTunnels(ctx context.Context) ([]*Tunnel, error)
	// UpdateTunnel replaces every field of the tunnel with t.ID except
	// Created. ErrNotFound if there is none; ErrExists if the new Name is
	// another tunnel's.
	UpdateTunnel(ctx context.Context, t *Tunnel) error
	// DeleteTunnel deletes a tunnel with its ports and endpoints.
	// ErrNotFound if there is none.
	DeleteTunnel(ctx context.Context, id string) error

	// CreatePort stores a new port. ErrExists if the tunnel already has a
	// port with this number; ErrNotFound if the tunnel does not exist.
	CreatePort(ctx context.Context, p *Port) error
	// UpdatePort replaces every field of the port (p.TunnelID, p.Number)
	// except Created. ErrNotFound if there is none.
	UpdatePort(ctx context.Context, p *Port) error
	// GetPort returns one port, or ErrNotFound.
	GetPort(ctx context.Context, tunnelID string, number uint16) (*Port, error)
	// ListPorts returns the ports of a tunnel, ordered by Number.
	// ErrNotFound if the tunnel does not exist.
	ListPorts(ctx context.Context, tunnelID string) ([]*Port, error)
	// DeletePort deletes one port. ErrNotFound if there is none.
	DeletePort(ctx context.Context, tunnelID string, number uint16) error

	// PutEndpoint creates or replaces the endpoint (e.TunnelID, e.ID).
	// ErrNotFound if the tunnel does not exist.
	PutEndpoint(ctx context.Context, e *Endpoint) error
	// ListEndpoints returns the endpoints of a tunnel, ordered by ID.
	// ErrNotFound if the tunnel does not exist.
	ListEndpoints(ctx context.Context, tunnelID string) ([]*Endpoint, error)
	// DeleteEndpoint deletes one endpoint. ErrNotFound if there is none.
	DeleteEndpoint(ctx context.Context, tunnelID, id string) error
	// DeleteEndpointsOfNode deletes every endpoint whose Node is node, on
	// all tunnels, and reports how many there were. A relay node calls it
	// at startup: the connections those endpoints stood for died with it.
	DeleteEndpointsOfNode(ctx context.Context, node string) (int, error)

	// CreateAPIKey stores a new key. ErrExists if its ID is taken.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// GetAPIKey returns the key with this ID, or ErrNotFound.
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)
	// ListAPIKeys returns every key, revoked ones included, oldest first
	// (by Created, then ID).
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)
	// RevokeAPIKey marks a key revoked at at. Revoking a revoked key keeps
	// the first RevokedAt and succeeds. ErrNotFound if there is no key.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error

	// CreateSigningKey stores a new key. ErrExists if its ID is taken.
	CreateSigningKey(ctx context.Context, k *SigningKey) error
	// ListSigningKeys returns every key, retired ones included, newest
	// first (by Created, then ID, both descending).
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// RetireSigningKey marks a key retired at at. Retiring a retired key
	// keeps the first RetiredAt and succeeds. ErrNotFound if there is no
	// key.
	RetireSigningKey(ctx context.Context, id string, at time.Time) error
	// DeleteSigningKey deletes a key. ErrNotFound if there is none.
	DeleteSigningKey(ctx context.Context, id string) error

	// ClaimWing records o as the owner of o.WingID unless the id has an
	// owner already, and returns the owner in force: o itself when it was
	// stored, else the existing record unchanged (which may name another
	// user; nothing is written then). Concurrent claims of one id all
	// return the same winner.
	ClaimWing(ctx context.Context, o *WingOwner) (*WingOwner, error)
	// GetWingOwner returns the owner of a wing id, or ErrNotFound.
	GetWingOwner(ctx context.Context, wingID string) (*WingOwner, error)
	// DeleteWingOwner releases a wing id: the next wing to register it
	// claims it. ErrNotFound if it has no owner.
	DeleteWingOwner(ctx context.Context, wingID string) error

	// The node registry and what nodes own: see ClusterStore.
	ClusterStore

	// Per-user wing bandwidth usage: see BandwidthStore.
	BandwidthStore

	// Close releases the store. Calls after Close fail.
	Close() error
}

// Clone returns a deep copy of t.
func (t *Tunnel) Clone() *Tunnel {
	c := *t
	c.Labels = slices.Clone(t.Labels)
	c.Options = bytes.Clone(t.Options)
	c.AccessControl = bytes.Clone(t.AccessControl)
	c.Expiration = clonePtr(t.Expiration)
	return &c
}

// Clone returns a deep copy of p.
func (p *Port) Clone() *Port {
	c := *p
	c.Labels = slices.Clone(p.Labels)
	c.Options = bytes.Clone(p.Options)
	c.AccessControl = bytes.Clone(p.AccessControl)
	return &c
}

// Clone returns a deep copy of e.
func (e *Endpoint) Clone() *Endpoint {
	c := *e
	c.HostPublicKeys = slices.Clone(e.HostPublicKeys)
	return &c
}

// Clone returns a deep copy of k.
func (k *APIKey) Clone() *APIKey {
	c := *k
	c.Hash = bytes.Clone(k.Hash)
	c.Scopes = slices.Clone(k.Scopes)
	c.RevokedAt = clonePtr(k.RevokedAt)
	return &c
}

// Clone returns a deep copy of k.
func (k *SigningKey) Clone() *SigningKey {
	c := *k
	c.Secret = bytes.Clone(k.Secret)
	c.RetiredAt = clonePtr(k.RetiredAt)
	return &c
}

// Clone returns a copy of o.
func (o *WingOwner) Clone() *WingOwner {
	c := *o
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// Validate reports, as ErrInvalid, why t cannot be stored. Backends call it
// before writing so that all of them accept exactly the same values.
func (t *Tunnel) Validate() error {
	if t == nil {
		return fmt.Errorf("%w: nil tunnel", ErrInvalid)
	}
	if t.ID == "" {
		return fmt.Errorf("%w: tunnel without id", ErrInvalid)
	}
	return firstErr(
		text("tunnel id", t.ID), text("tunnel name", t.Name),
		text("tunnel domain", t.Domain), text("tunnel description", t.Description),
		texts("tunnel label", t.Labels),
		jsonDoc("tunnel options", t.Options), jsonDoc("tunnel access control", t.AccessControl),
	)
}

// Validate reports, as ErrInvalid, why p cannot be stored.
func (p *Port) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil port", ErrInvalid)
	}
	if p.TunnelID == "" {
		return fmt.Errorf("%w: port without tunnel id", ErrInvalid)
	}
	if p.Number == 0 {
		return fmt.Errorf("%w: port number 0", ErrInvalid)
	}
	return firstErr(
		text("port tunnel id", p.TunnelID), text("port name", p.Name),
		text("port description", p.Description), text("port protocol", p.Protocol),
		text("port ssh user", p.SSHUser), texts("port label", p.Labels),
		jsonDoc("port options", p.Options), jsonDoc("port access control", p.AccessControl),
	)
}

// Validate reports, as ErrInvalid, why e cannot be stored.
func (e *Endpoint) Validate() error {
	if e == nil {
		return fmt.Errorf("%w: nil endpoint", ErrInvalid)
	}
	if e.TunnelID == "" || e.ID == "" {
		return fmt.Errorf("%w: endpoint without tunnel id or id", ErrInvalid)
	}
	return firstErr(
		text("endpoint tunnel id", e.TunnelID), text("endpoint id", e.ID),
		text("endpoint host id", e.HostID), text("endpoint connection mode", e.ConnectionMode),
		texts("endpoint host public key", e.HostPublicKeys), text("endpoint node", e.Node),
	)
}

// Validate reports, as ErrInvalid, why k cannot be stored.
func (k *APIKey) Validate() error {
	if k == nil {
		return fmt.Errorf("%w: nil api key", ErrInvalid)
	}
	if k.ID == "" {
		return fmt.Errorf("%w: api key without id", ErrInvalid)
	}
	if len(k.Hash) == 0 {
		return fmt.Errorf("%w: api key %q without hash", ErrInvalid, k.ID)
	}
	return firstErr(text("api key id", k.ID), text("api key name", k.Name), texts("api key scope", k.Scopes))
}

// Validate reports, as ErrInvalid, why k cannot be stored.
func (k *SigningKey) Validate() error {
	if k == nil {
		return fmt.Errorf("%w: nil signing key", ErrInvalid)
	}
	if k.ID == "" {
		return fmt.Errorf("%w: signing key without id", ErrInvalid)
	}
	if len(k.Secret) == 0 {
		return fmt.Errorf("%w: signing key %q without secret", ErrInvalid, k.ID)
	}
	return text("signing key id", k.ID)
}

// Validate reports, as ErrInvalid, why o cannot be stored.
func (o *WingOwner) Validate() error {
	if o == nil {
		return fmt.Errorf("%w: nil wing owner", ErrInvalid)
	}
	if o.WingID == "" || o.UserID == "" {
		return fmt.Errorf("%w: wing owner without wing id or user id", ErrInvalid)
	}
	return firstErr(text("wing id", o.WingID), text("wing owner user id", o.UserID))
}

// text rejects what a PostgreSQL text column would: invalid UTF-8 and NUL.
func text(what, s string) error {
	if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %s %q is not UTF-8 text without NUL", ErrInvalid, what, s)
	}
	return nil
}

func texts(what string, ss []string) error {
	for _, s := range ss {
		if err := text(what, s); err != nil {
			return err
		}
	}
	return nil
}

func jsonDoc(what string, doc json.RawMessage) error {
	if len(doc) > 0 && !json.Valid(doc) {
		return fmt.Errorf("%w: %s is not valid JSON", ErrInvalid, what)
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
