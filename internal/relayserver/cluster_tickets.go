package relayserver

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/store"
)

// Tickets across nodes. A ticket lives in the memory of the node that
// minted it, which claims it in the store; a PUT or GET reaching another
// node is carried whole to that node, so pairing, streaming and every
// failure (a cut upload aborts the download, which the hop passes on by
// aborting its own response) happen exactly as on one node.

// ticketClaimID is what the store keeps of a ticket: a digest, since the
// ticket itself is the bearer credential of its transfer.
func ticketClaimID(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return "sha256:" + hex.EncodeToString(sum[:16])
}

// ticketMinted claims a new ticket for this node.
func (s *Server) ticketMinted(ctx context.Context, ticket string) error {
	_, err := s.cfg.Store.ClaimTicket(ctx, &store.TicketClaim{TicketID: ticketClaimID(ticket), Node: s.cfg.Node, Created: s.now()})
	return err
}

// ticketEnded queues the claim's release; the ticket relay calls it under
// its lock.
func (s *Server) ticketEnded(ticket string) {
	select {
	case s.endedTickets <- ticketClaimID(ticket):
	default:
		// Released with the node at the latest; a claim of an ended
		// ticket routes nothing that would not fail anyway.
		s.log.Debug("ticket claim release queue full; left to the node's release")
	}
}

// releaseTickets deletes the claims of ended tickets until ctx ends.
func (s *Server) releaseTickets(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-s.endedTickets:
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := s.cfg.Store.DeleteTicketClaim(dctx, id, s.cfg.Node)
			cancel()
			if err != nil && !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				s.log.Warn("cannot release a ticket claim", "err", err)
			}
		}
	}
}

// serveTicket serves PUT and GET /v1/relay/{ticket}: here when the ticket
// is here, at its node when another live node claimed it.
func (s *Server) serveTicket(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/relay/")
	if !s.clustered() || isHop(r) || id == "" || strings.Contains(id, "/") || s.tickets.Has(id) {
		s.tickets.ServeHTTP(w, r)
		return
	}
	c, err := s.cfg.Store.GetTicketClaim(r.Context(), ticketClaimID(id))
	if err != nil || c.Node == s.cfg.Node {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("ticket claim lookup failed; answering here", "err", err)
		}
		s.tickets.ServeHTTP(w, r) // 410 for an unknown ticket
		return
	}
	n, err := s.liveNode(r.Context(), c.Node)
	if err != nil {
		// The node holding the ticket died, and the ticket with it.
		s.log.Info("ticket's node unreachable", "node", c.Node, "err", err)
		s.tickets.ServeHTTP(w, r)
		return
	}
	s.proxyTo(w, r, n, "the ticket")
}
