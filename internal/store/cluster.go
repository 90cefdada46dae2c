package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrSchema: the database's schema is not the one this build wants (not
// migrated yet, or migrated by a newer build). Check returns it; the store
// must not be used until it clears.
var ErrSchema = errors.New("store: schema is not current")

// Node is a relay node's registration: it holds a lease it renews, and is
// dead once the lease has ended without a renewal. Records a node owns
// (endpoints, wing registrations, ticket claims) name it by ID and are
// released when it is reaped.
type Node struct {
	ID string // from configuration, stable across restarts; unique
	// Instance is random per process start. A restarted node registers a
	// new Instance, which supersedes the old one: renewals that name the
	// old Instance fail, so two processes never share one lease.
	Instance    string
	InternalURL string // where other nodes reach this one ("" when single)
	PublicURL   string // where clients reach this node
	Started     time.Time
	Renewed     time.Time // last renewal
	Expires     time.Time // end of the lease: dead after this unless renewed
}

// Holdings counts the records held by a node, or released with it.
type Holdings struct {
	Endpoints int `json:"endpoints"`
	Wings     int `json:"wings"`
	Tickets   int `json:"tickets"`
}

// Add returns h + o.
func (h Holdings) Add(o Holdings) Holdings {
	return Holdings{Endpoints: h.Endpoints + o.Endpoints, Wings: h.Wings + o.Wings, Tickets: h.Tickets + o.Tickets}
}

// WingRegistration says which node holds a wing's connection. One node at a
// time: a wing that reconnects elsewhere moves its registration there.
type WingRegistration struct {
	WingID  string
	Node    string
	Updated time.Time
}

// TicketClaim says which node holds a ticket's transfer: the node its first
// side reached. The other side, whichever node it reaches, finds it here.
type TicketClaim struct {
	TicketID string
	Node     string
	Created  time.Time
}

// ClusterStore is the part of [Store] that keeps the node registry and the
// records nodes own. Every record is owned by a node ID; releasing a node
// deletes them all in the transaction that deletes the node.
type ClusterStore interface {
	// RegisterNode creates or replaces the node n.ID with n (a new
	// Instance supersedes the old one), and releases every record held
	// under n.ID: a restarted node's connections died with its process.
	// It returns what was released.
	RegisterNode(ctx context.Context, n *Node) (Holdings, error)
	// RenewNode moves the lease of node id to (renewed, expires) if
	// instance is still its registered Instance. ErrNotFound if not: the
	// node was reaped, or superseded by another process with its ID.
	RenewNode(ctx context.Context, id, instance string, renewed, expires time.Time) error
	// DeregisterNode deletes node id, if instance is its registered
	// Instance, with every record it holds (a clean shutdown). ErrNotFound
	// if not.
	DeregisterNode(ctx context.Context, id, instance string) (Holdings, error)
	// ListNodes returns every registered node, live or not yet reaped,
	// ordered by ID.
	ListNodes(ctx context.Context) ([]*Node, error)
	// ReapNodes deletes every node whose lease ended at or before now,
	// and every record held by a node that is not registered (the reaped
	// ones, and any left by a node that vanished). It returns the IDs of
	// the nodes deleted, sorted, and what was released. Concurrent reapers
	// release each record once.
	ReapNodes(ctx context.Context, now time.Time) ([]string, Holdings, error)
	// NodeHoldings counts the records each node holds, keyed by node ID;
	// nodes that hold nothing are absent. Records of unregistered nodes
	// are counted under their node ID too.
	NodeHoldings(ctx context.Context) (map[string]Holdings, error)

	// PutWingRegistration records r.Node as the holder of r.WingID,
	// replacing any other, and returns the node that held it before ("" if
	// none).
	PutWingRegistration(ctx context.Context, r *WingRegistration) (string, error)
	// GetWingRegistration returns the registration of a wing, or
	// ErrNotFound.
	GetWingRegistration(ctx context.Context, wingID string) (*WingRegistration, error)
	// DeleteWingRegistration deletes the registration of wingID if node
	// holds it. ErrNotFound if not: a wing that moved to another node
	// keeps its new registration when the old connection closes.
	DeleteWingRegistration(ctx context.Context, wingID, node string) error

	// ClaimTicket records c unless c.TicketID is claimed already, and
	// returns the claim in force: c itself when stored, else the existing
	// one unchanged. Concurrent claims of one ticket all return the same
	// winner.
	ClaimTicket(ctx context.Context, c *TicketClaim) (*TicketClaim, error)
	// GetTicketClaim returns the claim of a ticket, or ErrNotFound.
	GetTicketClaim(ctx context.Context, ticketID string) (*TicketClaim, error)
	// DeleteTicketClaim deletes the claim of ticketID if node holds it.
	// ErrNotFound if not.
	DeleteTicketClaim(ctx context.Context, ticketID, node string) error

	// Check reports whether the store is usable: the database answers and
	// its schema is the one this build wants (else an error matching
	// ErrSchema). relay-server's /readyz follows it.
	Check(ctx context.Context) error
}

// Clone returns a copy of n.
func (n *Node) Clone() *Node { c := *n; return &c }

// Clone returns a copy of r.
func (r *WingRegistration) Clone() *WingRegistration { c := *r; return &c }

// Clone returns a copy of c.
func (c *TicketClaim) Clone() *TicketClaim { v := *c; return &v }

// Validate reports, as ErrInvalid, why n cannot be stored.
func (n *Node) Validate() error {
	if n == nil {
		return fmt.Errorf("%w: nil node", ErrInvalid)
	}
	if n.ID == "" || n.Instance == "" {
		return fmt.Errorf("%w: node without id or instance", ErrInvalid)
	}
	return firstErr(text("node id", n.ID), text("node instance", n.Instance),
		text("node internal url", n.InternalURL), text("node public url", n.PublicURL))
}

// Validate reports, as ErrInvalid, why r cannot be stored.
func (r *WingRegistration) Validate() error {
	if r == nil {
		return fmt.Errorf("%w: nil wing registration", ErrInvalid)
	}
	if r.WingID == "" || r.Node == "" {
		return fmt.Errorf("%w: wing registration without wing id or node", ErrInvalid)
	}
	return firstErr(text("wing id", r.WingID), text("wing registration node", r.Node))
}

// Validate reports, as ErrInvalid, why c cannot be stored.
func (c *TicketClaim) Validate() error {
	if c == nil {
		return fmt.Errorf("%w: nil ticket claim", ErrInvalid)
	}
	if c.TicketID == "" || c.Node == "" {
		return fmt.Errorf("%w: ticket claim without ticket id or node", ErrInvalid)
	}
	return firstErr(text("ticket id", c.TicketID), text("ticket claim node", c.Node))
}
