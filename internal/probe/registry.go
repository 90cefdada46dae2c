package probe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/warrenhq/warren/internal/redact"
)

// Check is one configured check. Run does the check once, honouring ctx
// (its deadline is the check's timeout), and reports what it found; a
// Result with Err set is CRITICAL. Run may be called again (probe serve).
type Check interface {
	Run(ctx context.Context) Result
}

// Kind is a type of check and how to build one from YAML.
type Kind struct {
	Name    string // "relay_health"; the value of a check's kind key
	Summary string // one line for `probe checks`
	// Example is one entry of the checks list of this kind, as YAML lines
	// (starting with "- name: ..."), shown by `probe checks --example` and
	// in configs/probe.yaml.
	Example string
	// Params returns a pointer to a fresh parameter struct holding the
	// kind's defaults. Its fields with a yaml tag are the kind's keys;
	// fields of type Secret also accept <key>_file and <key>_env.
	Params func() any
	// New builds a Check from the decoded parameters (the pointer Params
	// returned). Errors about one key should be *ParamError.
	New func(params any, env Env) (Check, error)
}

// Env is what a check gets besides its parameters.
type Env struct {
	Logger *slog.Logger
	// Redactor takes the secrets a check learns while running (a minted
	// ticket, a fetched token) so that they never reach output.
	Redactor *redact.Redactor
}

// ParamError blames one parameter of a check.
type ParamError struct {
	Key string
	Err error
}

func (e *ParamError) Error() string { return fmt.Sprintf("key %q: %v", e.Key, e.Err) }
func (e *ParamError) Unwrap() error { return e.Err }

// ParamErrorf returns a *ParamError for key.
func ParamErrorf(key, format string, args ...any) error {
	return &ParamError{Key: key, Err: fmt.Errorf(format, args...)}
}

// ErrUnknownKind is wrapped by errors about a kind no registry knows.
var ErrUnknownKind = errors.New("unknown check kind")

// Registry holds the kinds a probe knows.
type Registry struct {
	mu    sync.RWMutex
	kinds map[string]*Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]*Kind{}} }

// Default is the registry the probe binary fills with its kinds. The
// checks list type (Specs) uses it to know which keys are secrets.
var Default = NewRegistry()

// Register adds k; a second kind with the same name is an error.
func (r *Registry) Register(k Kind) error {
	if k.Name == "" || k.Params == nil || k.New == nil {
		return fmt.Errorf("probe: kind %q needs Name, Params and New", k.Name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.kinds[k.Name]; dup {
		return fmt.Errorf("probe: kind %q registered twice", k.Name)
	}
	r.kinds[k.Name] = &k
	return nil
}

// MustRegister is Register that panics, for init functions.
func (r *Registry) MustRegister(kinds ...Kind) {
	for _, k := range kinds {
		if err := r.Register(k); err != nil {
			panic(err)
		}
	}
}

// Lookup returns the kind named name.
func (r *Registry) Lookup(name string) (*Kind, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	k, ok := r.kinds[name]
	return k, ok
}

// Kinds returns every kind, sorted by name.
func (r *Registry) Kinds() []*Kind {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Kind, 0, len(r.kinds))
	for _, k := range r.kinds {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the kind names, sorted.
func (r *Registry) Names() []string {
	var names []string
	for _, k := range r.Kinds() {
		names = append(names, k.Name)
	}
	return names
}
