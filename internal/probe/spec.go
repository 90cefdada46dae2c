package probe

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/internal/redact"
	"github.com/warrenhq/warren/internal/secret"
	"github.com/warrenhq/warren/internal/suggest"
)

// Spec is one entry of the checks list as written in YAML: the keys every
// check has, and the kind's own keys kept undecoded until Build (which
// reads secret files and env).
type Spec struct {
	Name     string        // unique in the list; used in output, metric labels and artifact dirs
	Kind     string        // a registered kind
	Timeout  time.Duration // 0: BuildOptions.DefaultTimeout
	Warning  time.Duration // duration at or above which an OK check is WARNING; 0: none
	Critical time.Duration // duration at or above which an OK check is CRITICAL; 0: none
	Params   *yaml.Node    // mapping of the kind's keys (may be nil)
}

// Specs is the checks list of probe's configuration. It decodes from YAML
// with errors naming the entry, the check and the key, and encodes (YAML
// and JSON) with literal secrets replaced by <redacted:KEY>.
type Specs []Spec

// common keys of every check; the rest belong to the kind.
var commonKeys = []string{"name", "kind", "timeout", "warning", "critical"}

// namePattern keeps names usable as metric label values and directory names.
var namePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// SpecError is a problem with one entry of the checks list.
type SpecError struct {
	Index int    // 0-based position in the list
	Name  string // the check's name, "" if it has none yet
	Kind  string
	Key   string // the offending key, "" for the entry as a whole
	Err   error
}

func (e *SpecError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "checks[%d]", e.Index)
	if e.Name != "" {
		fmt.Fprintf(&b, " %q", e.Name)
	}
	if e.Kind != "" {
		fmt.Fprintf(&b, " (kind %s)", e.Kind)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	return b.String() + ": " + e.Err.Error()
}

func (e *SpecError) Unwrap() error { return e.Err }

// TypeHint names the type in configuration errors.
func (Specs) TypeHint() string { return "a list of checks (name, kind, ...)" }

// UnmarshalYAML decodes the list, checking the common keys and that the
// kind exists in Default; the kind's keys are checked by Build.
func (s *Specs) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		*s = nil
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return errors.New("checks must be a list")
	}
	out := make(Specs, 0, len(n.Content))
	seen := map[string]int{}
	for i, item := range n.Content {
		sp, err := decodeSpec(i, item)
		if err != nil {
			return err
		}
		if j, dup := seen[sp.Name]; dup {
			return &SpecError{Index: i, Name: sp.Name, Key: "name", Err: fmt.Errorf("name already used by checks[%d]", j)}
		}
		seen[sp.Name] = i
		out = append(out, sp)
	}
	*s = out
	return nil
}

func decodeSpec(i int, item *yaml.Node) (Spec, error) {
	sp := Spec{}
	if item.Kind != yaml.MappingNode {
		return sp, &SpecError{Index: i, Err: errors.New("expected a mapping with name, kind and the kind's keys")}
	}
	params := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for j := 0; j+1 < len(item.Content); j += 2 {
		k, v := item.Content[j], item.Content[j+1]
		var err error
		switch k.Value {
		case "name":
			err = v.Decode(&sp.Name)
		case "kind":
			err = v.Decode(&sp.Kind)
		case "timeout":
			err = decodeDuration(v, &sp.Timeout)
		case "warning":
			err = decodeDuration(v, &sp.Warning)
		case "critical":
			err = decodeDuration(v, &sp.Critical)
		default:
			params.Content = append(params.Content, k, v)
			continue
		}
		if err != nil {
			return sp, &SpecError{Index: i, Name: sp.Name, Key: k.Value, Err: err}
		}
	}
	switch {
	case sp.Name == "":
		return sp, &SpecError{Index: i, Key: "name", Err: errors.New("missing: every check needs a name")}
	case !namePattern.MatchString(sp.Name):
		return sp, &SpecError{Index: i, Name: sp.Name, Key: "name", Err: errors.New("use letters, digits, '_', '.', '-' (at most 64, not starting with a symbol)")}
	case sp.Kind == "":
		return sp, &SpecError{Index: i, Name: sp.Name, Key: "kind", Err: fmt.Errorf("missing; one of %s", strings.Join(Default.Names(), ", "))}
	}
	if _, ok := Default.Lookup(sp.Kind); !ok {
		return sp, &SpecError{Index: i, Name: sp.Name, Key: "kind", Err: fmt.Errorf("%w %q; one of %s", ErrUnknownKind, sp.Kind, strings.Join(Default.Names(), ", "))}
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"timeout", sp.Timeout}, {"warning", sp.Warning}, {"critical", sp.Critical}} {
		if d.v < 0 {
			return sp, &SpecError{Index: i, Name: sp.Name, Kind: sp.Kind, Key: d.key, Err: errors.New("must not be negative")}
		}
	}
	if sp.Warning > 0 && sp.Critical > 0 && sp.Warning > sp.Critical {
		return sp, &SpecError{Index: i, Name: sp.Name, Kind: sp.Kind, Key: "warning", Err: fmt.Errorf("%s is above critical %s", sp.Warning, sp.Critical)}
	}
	sp.Params = params
	return sp, nil
}

func decodeDuration(n *yaml.Node, d *time.Duration) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return errors.New("expected a duration such as 2s or 500ms")
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("expected a duration such as 2s or 500ms, got %q", s)
	}
	*d = v
	return nil
}

// secretKeys returns the Secret parameter keys of kind, or nil.
func secretKeys(kind string) map[string]bool {
	k, ok := Default.Lookup(kind)
	if !ok {
		return nil
	}
	keys := map[string]bool{}
	for _, f := range paramFields(reflect.TypeOf(k.Params()).Elem()) {
		if f.secret {
			keys[f.key] = true
		}
	}
	return keys
}

// display renders a spec for `config show`: literal secrets redacted,
// <key>_file and <key>_env shown (a path or a variable name is no secret).
func (sp Spec) display() *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	add := func(k string, v *yaml.Node) {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v)
	}
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: s} }
	add("name", str(sp.Name))
	add("kind", str(sp.Kind))
	for _, d := range []struct {
		k string
		v time.Duration
	}{{"timeout", sp.Timeout}, {"warning", sp.Warning}, {"critical", sp.Critical}} {
		if d.v > 0 {
			add(d.k, str(d.v.String()))
		}
	}
	secrets := secretKeys(sp.Kind)
	if sp.Params != nil {
		for j := 0; j+1 < len(sp.Params.Content); j += 2 {
			k, v := sp.Params.Content[j], sp.Params.Content[j+1]
			if secrets[k.Value] {
				v = str(redact.Named(k.Value))
			}
			add(k.Value, v)
		}
	}
	return m
}

// ConfigFootComment is the comment `probe config show` puts under an empty
// list: an example of every kind in Default, so the generated
// configs/probe.yaml documents every check.
func (s Specs) ConfigFootComment() string {
	ex := ExampleYAML(Default)
	if len(s) > 0 || ex == "" {
		return ""
	}
	return "Examples, one of every kind. Secrets are given as <key>_file or <key>_env\n" +
		"(or <key>, shown redacted). Keys of every check: name, kind, timeout,\n" +
		"warning and critical (latency thresholds). Uncomment and edit:\n" +
		"checks:\n" + indentLines(ex)
}

func indentLines(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" && l != "\n" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "")
}

// MarshalYAML writes the list with literal secrets redacted.
func (s Specs) MarshalYAML() (any, error) {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if len(s) == 0 {
		n.Style = yaml.FlowStyle
	}
	for _, sp := range s {
		n.Content = append(n.Content, sp.display())
	}
	return n, nil
}

// MarshalJSON writes the list with literal secrets redacted.
func (s Specs) MarshalJSON() ([]byte, error) {
	out := make([]any, 0, len(s))
	for _, sp := range s {
		var v any
		if err := sp.display().Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return json.Marshal(out)
}

// paramField is one key of a kind's parameter struct.
type paramField struct {
	key    string
	index  int
	secret bool
}

var secretType = reflect.TypeOf(Secret{})

func paramFields(t reflect.Type) []paramField {
	var out []paramField
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !sf.IsExported() {
			continue
		}
		out = append(out, paramField{key: name, index: i, secret: sf.Type == secretType})
	}
	return out
}

// SecretSource reads <key>_file and <key>_env; the CLI supplies it so the
// engine itself touches neither the filesystem nor the environment.
type SecretSource struct {
	ReadFile  func(path string) ([]byte, error)
	LookupEnv func(name string) (string, bool)
}

// decodeParams fills dst (a pointer to a parameter struct) from the
// mapping n, refusing unknown keys and resolving secrets.
func decodeParams(n *yaml.Node, dst any, src SecretSource, red *redact.Redactor) error {
	rv := reflect.ValueOf(dst).Elem()
	fields := paramFields(rv.Type())
	byKey := map[string]paramField{}
	var known []string
	for _, f := range fields {
		byKey[f.key] = f
		known = append(known, f.key)
		if f.secret {
			known = append(known, f.key+"_file", f.key+"_env")
		}
	}
	known = append(known, commonKeys...)
	seen := map[string]string{} // secret key → the spelling used
	if n == nil {
		return nil
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := n.Content[j], n.Content[j+1]
		key := k.Value
		if f, ok := byKey[key]; ok && !f.secret {
			if err := v.Decode(rv.Field(f.index).Addr().Interface()); err != nil {
				return &ParamError{Key: key, Err: cleanYAMLError(err)}
			}
			continue
		}
		base, how := key, "value"
		if b, ok := strings.CutSuffix(key, "_file"); ok && byKey[b].secret {
			base, how = b, "file"
		} else if b, ok := strings.CutSuffix(key, "_env"); ok && byKey[b].secret {
			base, how = b, "env"
		}
		f, ok := byKey[base]
		if !ok || !f.secret {
			msg := "unknown key"
			if sug := suggest.Closest(key, known); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			sort.Strings(known)
			return &ParamError{Key: key, Err: fmt.Errorf("%s; known keys: %s", msg, strings.Join(known, ", "))}
		}
		if prev, dup := seen[base]; dup {
			return &ParamError{Key: key, Err: fmt.Errorf("set either %s or %s, not both", prev, key)}
		}
		seen[base] = key
		var s string
		if v.Kind != yaml.ScalarNode || v.Decode(&s) != nil {
			return &ParamError{Key: key, Err: errors.New("expected a string")}
		}
		val, err := resolveSecret(how, s, src)
		if err != nil {
			return &ParamError{Key: key, Err: err}
		}
		red.Add(base, val)
		rv.Field(f.index).Set(reflect.ValueOf(Secret{Key: base, Value: val}))
	}
	return nil
}

func resolveSecret(how, s string, src SecretSource) (string, error) {
	switch how {
	case "file":
		if src.ReadFile == nil {
			return "", errors.New("secret files are not available here")
		}
		return secret.FromFile(src.ReadFile, s)
	case "env":
		if src.LookupEnv == nil {
			return "", errors.New("secret env variables are not available here")
		}
		return secret.FromEnv(src.LookupEnv, s)
	}
	if s == "" {
		return "", errors.New("empty")
	}
	return s, nil
}

// cleanYAMLError drops yaml.v3's "yaml: unmarshal errors:\n  line N:" framing.
func cleanYAMLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: unmarshal errors:\n")
	msg = strings.TrimSpace(msg)
	if _, rest, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
		msg = rest
	}
	return errors.New(msg)
}

// sanitizedParams renders decoded parameters for artifacts and JSON:
// secrets as placeholders, durations as text.
func sanitizedParams(p any) map[string]any {
	rv := reflect.ValueOf(p).Elem()
	out := map[string]any{}
	for _, f := range paramFields(rv.Type()) {
		v := rv.Field(f.index)
		switch {
		case f.secret:
			if s := v.Interface().(Secret); s.IsSet() {
				out[f.key] = s.Placeholder()
			}
		case v.Type() == reflect.TypeOf(time.Duration(0)):
			out[f.key] = time.Duration(v.Int()).String()
		default:
			out[f.key] = v.Interface()
		}
	}
	return out
}

// Configured is a built check with its common settings.
type Configured struct {
	Name     string
	Kind     string
	Timeout  time.Duration
	Warning  time.Duration
	Critical time.Duration
	Params   map[string]any // sanitized, for artifacts
	Check    Check
}

// BuildOptions are what Build needs besides the list.
type BuildOptions struct {
	Registry       *Registry     // nil: Default
	DefaultTimeout time.Duration // for checks without a timeout; 0: 10s
	Secrets        SecretSource
	Env            Env // Redactor receives every configured secret
}

// Build decodes every spec's parameters and builds its check. The first
// problem is returned as a *SpecError.
func Build(specs Specs, o BuildOptions) ([]*Configured, error) {
	reg := o.Registry
	if reg == nil {
		reg = Default
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 10 * time.Second
	}
	var out []*Configured
	for i, sp := range specs {
		kind, ok := reg.Lookup(sp.Kind)
		if !ok {
			return nil, &SpecError{Index: i, Name: sp.Name, Key: "kind", Err: fmt.Errorf("%w %q; one of %s", ErrUnknownKind, sp.Kind, strings.Join(reg.Names(), ", "))}
		}
		params := kind.Params()
		if err := decodeParams(sp.Params, params, o.Secrets, o.Env.Redactor); err != nil {
			return nil, specErr(i, sp, err)
		}
		env := o.Env
		if env.Logger != nil {
			env.Logger = env.Logger.With("check", sp.Name)
		}
		chk, err := kind.New(params, env)
		if err != nil {
			return nil, specErr(i, sp, err)
		}
		timeout := sp.Timeout
		if timeout == 0 {
			timeout = o.DefaultTimeout
		}
		out = append(out, &Configured{
			Name: sp.Name, Kind: sp.Kind, Timeout: timeout, Warning: sp.Warning, Critical: sp.Critical,
			Params: sanitizedParams(params), Check: chk,
		})
	}
	return out, nil
}

func specErr(i int, sp Spec, err error) error {
	se := &SpecError{Index: i, Name: sp.Name, Kind: sp.Kind, Err: err}
	var pe *ParamError
	if errors.As(err, &pe) {
		se.Key, se.Err = pe.Key, pe.Err
	}
	return se
}

// ExampleYAML is a checks list with one example of every kind in reg, for
// `probe checks --example` and the comment under an empty checks list.
func ExampleYAML(reg *Registry) string {
	var b strings.Builder
	for _, k := range reg.Kinds() {
		if k.Example == "" {
			continue
		}
		fmt.Fprintf(&b, "# %s: %s\n%s\n", k.Name, k.Summary, strings.TrimRight(k.Example, "\n"))
	}
	return b.String()
}
