package wingagent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// AllowStateFile is the file, in Config.StateDir, that keeps the allow-list
// edits made through allow.add and allow.remove requests.
const AllowStateFile = "allow-edits.json"

// allowEdits are the allow-list changes made through requests, kept apart
// from the configured list so that a config reload (SIGHUP) keeps them:
// the live list is the configured one plus Added minus Removed.
type allowEdits struct {
	Version int      `json:"version"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
}

const allowEditsVersion = 1

// maxAllowState bounds the state file read at start.
const maxAllowState = 4 << 20

// parseAllowEdits decodes the state file; what it names is in errors.
func parseAllowEdits(b []byte) (allowEdits, error) {
	var e allowEdits
	if len(b) > maxAllowState {
		return e, fmt.Errorf("larger than %d bytes", maxAllowState)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return allowEdits{}, fmt.Errorf("not the wing's allow-list state: %w", err)
	}
	if dec.More() {
		return allowEdits{}, errors.New("not the wing's allow-list state: trailing data")
	}
	if e.Version != allowEditsVersion {
		return allowEdits{}, fmt.Errorf("version %d, this wing reads version %d", e.Version, allowEditsVersion)
	}
	for _, u := range slices.Concat(e.Added, e.Removed) {
		if strings.TrimSpace(u) == "" || u != strings.TrimSpace(u) {
			return allowEdits{}, fmt.Errorf("user %q is empty or padded", u)
		}
	}
	return e, nil
}

// loadAllowEdits reads dir's state file; a missing file is no edits.
func loadAllowEdits(dir string) (allowEdits, error) {
	path := filepath.Join(dir, AllowStateFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return allowEdits{Version: allowEditsVersion}, nil
	}
	if err != nil {
		return allowEdits{}, fmt.Errorf("allow-list state: %w", err)
	}
	e, err := parseAllowEdits(b)
	if err != nil {
		return allowEdits{}, fmt.Errorf("allow-list state %s: %w (fix or remove it)", path, err)
	}
	return e, nil
}

// saveAllowEdits writes the state file atomically: a temporary file in the
// same directory (mode 0600), synced, then renamed over the old one, so a
// crash leaves the old list or the new one, never half of either.
func saveAllowEdits(dir string, e allowEdits) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("allow-list state: %w", err)
	}
	e.Version = allowEditsVersion
	b, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".allow-edits-*.tmp") // created 0600
	if err != nil {
		return fmt.Errorf("allow-list state: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(append(b, '\n'))
	if werr == nil {
		werr = f.Chmod(0o600)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(dir, AllowStateFile))
	}
	if werr != nil {
		os.Remove(tmp)
		return fmt.Errorf("allow-list state: write %s: %w", filepath.Join(dir, AllowStateFile), werr)
	}
	if d, err := os.Open(dir); err == nil { // make the rename durable
		d.Sync()
		d.Close()
	}
	return nil
}

func hasUser(list []string, user string) bool {
	return slices.ContainsFunc(list, func(u string) bool { return strings.EqualFold(u, user) })
}

func dropUser(list []string, user string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(u string) bool { return strings.EqualFold(u, user) })
}

// applyAllowEdits is base's allow list plus e.Added minus e.Removed.
func applyAllowEdits(base Access, e allowEdits) Access {
	out := cloneAccess(base)
	out.Allow = slices.DeleteFunc(out.Allow, func(x AllowEntry) bool { return hasUser(e.Removed, x.User) })
	for _, u := range e.Added {
		if !slices.ContainsFunc(out.Allow, func(x AllowEntry) bool { return strings.EqualFold(x.User, u) }) {
			out.Allow = append(out.Allow, AllowEntry{User: u})
		}
	}
	return out
}

// editAllow adds or removes user through a request, keeps the edit in the
// state dir (when there is one) and applies it; it reports whether the
// live list changed. Nothing changes if the edit cannot be saved.
func (a *Agent) editAllow(add bool, user string) (bool, error) {
	a.allowMu.Lock()
	defer a.allowMu.Unlock()
	e := allowEdits{Version: allowEditsVersion, Added: dropUser(a.edits.Added, user), Removed: dropUser(a.edits.Removed, user)}
	inBase := slices.ContainsFunc(a.base.Allow, func(x AllowEntry) bool { return strings.EqualFold(x.User, user) })
	switch {
	case add && !inBase:
		e.Added = append(e.Added, user)
	case !add && inBase:
		e.Removed = append(e.Removed, user)
	}
	before := a.guard.snapshot()
	after := applyAllowEdits(a.base, e)
	if a.cfg.StateDir != "" {
		if err := saveAllowEdits(a.cfg.StateDir, e); err != nil {
			return false, err
		}
	}
	a.edits = e
	a.guard.set(after)
	return !sameUsers(before.Allow, after.Allow), nil
}

func sameUsers(x, y []AllowEntry) bool {
	if len(x) != len(y) {
		return false
	}
	for _, e := range x {
		if !slices.ContainsFunc(y, func(f AllowEntry) bool { return strings.EqualFold(e.User, f.User) }) {
			return false
		}
	}
	return true
}

// setBaseAccess installs the configured Access with the kept edits on top.
func (a *Agent) setBaseAccess(acc Access) {
	a.allowMu.Lock()
	defer a.allowMu.Unlock()
	a.base = cloneAccess(acc)
	a.guard.set(applyAllowEdits(acc, a.edits))
}
