package ticket

// Has reports whether the ticket id is live on this relay. A clustered
// relay-server uses it to tell a ticket minted here from one another node
// holds.
func (r *Relay) Has(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.tickets[id]
	return ok
}
