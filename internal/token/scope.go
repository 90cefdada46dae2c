package token

import "github.com/warrenhq/warren/internal/protocol/devtunnels"

// Token scopes (devtunnels.md §2.2). A host gets ScopeHost, a client
// ScopeConnect.
// They are the wire names of package devtunnels, repeated here so callers
// of token need not import the protocol package.
const (
	ScopeCreate      = devtunnels.ScopeCreate
	ScopeManage      = devtunnels.ScopeManage
	ScopeManagePorts = devtunnels.ScopeManagePorts
	ScopeHost        = devtunnels.ScopeHost
	ScopeInspect     = devtunnels.ScopeInspect
	ScopeConnect     = devtunnels.ScopeConnect
)

// ValidScope reports whether s is one of the Scope* constants.
func ValidScope(s string) bool {
	switch s {
	case ScopeCreate, ScopeManage, ScopeManagePorts, ScopeHost, ScopeInspect, ScopeConnect:
		return true
	}
	return false
}
