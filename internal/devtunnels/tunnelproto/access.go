package tunnelproto

import (
	"encoding/json"
	"slices"
	"strings"
)

// AccessControlEntryTypeAnonymous is the entry type that grants (or, with
// isDeny, refuses) its scopes to everyone, without a token.
const AccessControlEntryTypeAnonymous = "Anonymous"

// AccessControl is the subset of a tunnel's or port's accessControl
// document that warren enforces: anonymous entries. Other entry types
// (users, organizations, IP ranges) name identities warren does not have;
// they are kept as given and ignored.
type AccessControl struct {
	Entries []AccessControlEntry `json:"entries"`
}

// AccessControlEntry is one entry of an accessControl document.
type AccessControlEntry struct {
	Type     string   `json:"type"`
	IsDeny   bool     `json:"isDeny,omitempty"`
	Subjects []string `json:"subjects"`
	Scopes   []string `json:"scopes"`
}

// AnonymousAccess reads an accessControl document (JSON, possibly empty)
// and reports whether it has an anonymous entry for scope, and if so
// whether that entry allows or denies. A deny entry wins over an allow
// entry in the same document. An unparsable document decides nothing.
func AnonymousAccess(doc json.RawMessage, scope string) (decided, allowed bool) {
	if len(doc) == 0 {
		return false, false
	}
	var ac AccessControl
	if err := json.Unmarshal(doc, &ac); err != nil {
		return false, false
	}
	for _, e := range ac.Entries {
		if !strings.EqualFold(e.Type, AccessControlEntryTypeAnonymous) || !slices.Contains(e.Scopes, scope) {
			continue
		}
		if e.IsDeny {
			return true, false
		}
		decided, allowed = true, true
	}
	return decided, allowed
}

// AnonymousConnectDocument is the accessControl document that lets anyone
// connect: what `relay-server tunnels ports add --anonymous` stores.
func AnonymousConnectDocument() json.RawMessage {
	b, _ := json.Marshal(AccessControl{Entries: []AccessControlEntry{{
		Type: AccessControlEntryTypeAnonymous, Subjects: []string{}, Scopes: []string{ScopeConnect},
	}}})
	return b
}

// HeaderOptions reads the isHostHeaderUnchanged and
// isOriginHeaderUnchanged flags of an options document (false when absent
// or unparsable): web forwarding rewrites Host and Origin to localhost
// unless they are set.
func HeaderOptions(doc json.RawMessage) (hostUnchanged, originUnchanged bool) {
	var o struct {
		IsHostHeaderUnchanged   bool `json:"isHostHeaderUnchanged"`
		IsOriginHeaderUnchanged bool `json:"isOriginHeaderUnchanged"`
	}
	if len(doc) > 0 && json.Unmarshal(doc, &o) == nil {
		return o.IsHostHeaderUnchanged, o.IsOriginHeaderUnchanged
	}
	return false, false
}
