package wingagent

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"
)

// Passkey is a WebAuthn credential a user proves presence with: the raw
// 64-byte X‖Y of its P-256 public key and its credential id (base64url, as
// the browser reports it; informational, every key of the user is tried).
type Passkey struct {
	CredentialID string
	PublicKey    []byte
}

// AllowEntry admits one user to a locked wing. User matches the relay's
// user id, or the user's email (case-insensitive). Passkeys, when given,
// gate that user's sessions and requests behind a passkey assertion.
type AllowEntry struct {
	User     string
	Passkeys []Passkey
}

// Access is the wing's lock state and allow list (docs/protocols/wing.md §2.7, §2.8).
type Access struct {
	// Locked serves only the owner and the users on Allow.
	Locked bool
	// Allow lists the admitted users.
	Allow []AllowEntry
}

// guard holds the live Access and the issued passkey auth tokens. The
// tokens survive reloads: a reload changes who is allowed, and every check
// consults the allow list again, so a removed user's token stops working.
type guard struct {
	mu     sync.Mutex
	acc    Access
	ttl    time.Duration
	tokens map[string]authToken
	now    func() time.Time
}

type authToken struct {
	user string
	exp  time.Time
}

// identity is who the relay says a request comes from; Agent.identify
// builds it.
type identity struct {
	user, email, role string
	isOwner           bool
}

func (id identity) owner() bool { return id.isOwner }

func (e AllowEntry) matches(id identity) bool {
	if e.User == "" {
		return false
	}
	return e.User == id.user || (id.email != "" && strings.EqualFold(e.User, id.email))
}

func (g *guard) set(acc Access) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.acc = cloneAccess(acc)
}

func cloneAccess(acc Access) Access {
	out := Access{Locked: acc.Locked, Allow: make([]AllowEntry, len(acc.Allow))}
	for i, e := range acc.Allow {
		out.Allow[i] = AllowEntry{User: e.User, Passkeys: slices.Clone(e.Passkeys)}
	}
	return out
}

func (g *guard) snapshot() Access {
	g.mu.Lock()
	defer g.mu.Unlock()
	return cloneAccess(g.acc)
}

// allowed says whether id may use the wing at all: an unlocked wing serves
// its owner's sockets (the relay only routes those), a locked one its owner
// and the allow list.
func (g *guard) allowed(id identity) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if id.owner() {
		return true
	}
	if !g.acc.Locked {
		// Only the owner reaches an unlocked wing through warren's relay;
		// anyone else is refused here too.
		return false
	}
	for _, e := range g.acc.Allow {
		if e.matches(id) {
			return true
		}
	}
	return false
}

// passkeys returns the keys id must prove one of; none means no gate.
func (g *guard) passkeys(id identity) []Passkey {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []Passkey
	for _, e := range g.acc.Allow {
		if e.matches(id) {
			out = append(out, e.Passkeys...)
		}
	}
	return out
}

// tokenValid says tok was issued to id.user and has not expired.
func (g *guard) tokenValid(tok string, id identity) bool {
	if tok == "" {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	t, ok := g.tokens[tok]
	if !ok {
		return false
	}
	if g.now().After(t.exp) {
		delete(g.tokens, tok)
		return false
	}
	return t.user == id.user
}

// issue mints an auth token for id: hex of 32 random bytes, valid for ttl.
func (g *guard) issue(id identity) string {
	b := make([]byte, 32)
	rand.Read(b)
	tok := hex.EncodeToString(b)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	for k, t := range g.tokens { // drop expired ones as we go
		if now.After(t.exp) {
			delete(g.tokens, k)
		}
	}
	g.tokens[tok] = authToken{user: id.user, exp: now.Add(g.ttl)}
	return tok
}
