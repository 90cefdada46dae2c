package token

import "github.com/warrenhq/warren/internal/devtunnels/tunnelproto"

// Token scopes (docs/protocols/devtunnels.md §2.2). A host gets ScopeHost, a client
// ScopeConnect.
// They are the wire names of package devtunnels, repeated here so callers
// of token need not import the protocol package.
const (
	ScopeCreate      = tunnelproto.ScopeCreate
	ScopeManage      = tunnelproto.ScopeManage
	ScopeManagePorts = tunnelproto.ScopeManagePorts
	ScopeHost        = tunnelproto.ScopeHost
	ScopeInspect     = tunnelproto.ScopeInspect
	ScopeConnect     = tunnelproto.ScopeConnect
)

// ValidScope reports whether s is one of the Scope* constants.
func ValidScope(s string) bool {
	switch s {
	case ScopeCreate, ScopeManage, ScopeManagePorts, ScopeHost, ScopeInspect, ScopeConnect:
		return true
	}
	return false
}
