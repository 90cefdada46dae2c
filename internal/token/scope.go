package token

// Token scopes (devtunnels.md §2.2). A host gets ScopeHost, a client
// ScopeConnect.
const (
	ScopeCreate      = "create"
	ScopeManage      = "manage"
	ScopeManagePorts = "manage:ports"
	ScopeHost        = "host"
	ScopeInspect     = "inspect"
	ScopeConnect     = "connect"
)

// ValidScope reports whether s is one of the Scope* constants.
func ValidScope(s string) bool {
	switch s {
	case ScopeCreate, ScopeManage, ScopeManagePorts, ScopeHost, ScopeInspect, ScopeConnect:
		return true
	}
	return false
}
