package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/internal/secret"
)

// loader reads one binary's configuration: defaults, file, env, flags.
type loader struct {
	binary   string // "relay-server"
	prefix   string // "WARREN_RELAY_SERVER"
	schema   *schema
	defaults reflect.Value // the default config struct (not a pointer)
	flags    map[string]*pflag.Flag
}

// loaded is the outcome of one load: the file used and where each key came from.
type loaded struct {
	file        string
	fileLines   map[string]int
	secretFiles map[string]string // "<key>_file" → the path it named
	l           *loader
}

func newLoader(binary string, defaults any) (*loader, error) {
	rv := reflect.ValueOf(defaults)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config defaults must be a pointer to a struct, got %T", defaults)
	}
	s, err := newSchema(rv.Elem().Type())
	if err != nil {
		return nil, err
	}
	if r, ok := defaults.(removedKeys); ok {
		s.removed = r.RemovedKeys()
	}
	def := reflect.New(rv.Elem().Type()).Elem()
	def.Set(rv.Elem())
	return &loader{
		binary:   binary,
		prefix:   "WARREN_" + strings.ToUpper(strings.ReplaceAll(binary, "-", "_")),
		schema:   s,
		defaults: def,
		flags:    map[string]*pflag.Flag{},
	}, nil
}

// configEnv is the variable that names the config file when --config is not given.
func (l *loader) configEnv() string { return l.prefix + "_CONFIG" }

// searchPath lists where a config file is looked for when none is named.
func (l *loader) searchPath() []string {
	name := l.binary + ".yaml"
	paths := []string{name}
	xdg := os.Getenv("XDG_CONFIG_HOME")
	if xdg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			xdg = filepath.Join(home, ".config")
		}
	}
	if xdg != "" {
		paths = append(paths, filepath.Join(xdg, "warren", name))
	}
	return append(paths, filepath.Join("/etc/warren", name))
}

// findFile resolves the config file: an explicit one must exist; otherwise
// the first file on the search path, or none.
func (l *loader) findFile(explicit, explicitFrom string) (string, error) {
	if explicit == "" {
		if p := os.Getenv(l.configEnv()); p != "" {
			explicit, explicitFrom = p, "env "+l.configEnv()
		}
	}
	if explicit != "" {
		st, err := os.Stat(explicit)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return "", &ConfigError{Where: explicitFrom, Err: fmt.Errorf("config file %s does not exist", explicit)}
			}
			return "", &ConfigError{Where: explicitFrom, Err: err}
		}
		if st.IsDir() {
			return "", &ConfigError{Where: explicitFrom, Err: fmt.Errorf("config file %s is a directory", explicit)}
		}
		return explicit, nil
	}
	for _, p := range l.searchPath() {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	return "", nil
}

// load fills cfg (a pointer to the config struct, already holding defaults)
// from file, env and flags, then reads <key>_file secrets and validates.
//
// viper carries precedence (flag > env > file > default), binds
// WARREN_<BINARY>_<KEY> and decodes the merged settings into cfg with
// mapstructure. What viper cannot do stays here: the file is read once as
// a yaml.Node so unknown keys and bad values are blamed on file:line,
// unknown env variables are refused, <key>_file secrets are read, and
// every value is decoded by one strict hook (decodeHook) so a key accepts
// the same spellings, with the same messages, from every source.
func (l *loader) load(cfg any, file string) (*loaded, error) {
	res := &loaded{file: file, fileLines: map[string]int{}, secretFiles: map[string]string{}, l: l}
	v := viper.New()
	v.SetEnvPrefix(l.prefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_", "-", "_"))
	for _, f := range l.schema.fields {
		if err := v.BindEnv(f.key); err != nil {
			return nil, err
		}
		if f.fileOf == "" {
			v.SetDefault(f.key, f.value(l.defaults.Addr()).Interface())
		}
		if fl := l.flags[f.key]; fl != nil {
			if err := v.BindPFlag(f.key, fl); err != nil {
				return nil, err
			}
		}
	}
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, &ConfigError{Where: file, Err: err}
		}
		settings, err := readYAML(file, data, l.schema, res.fileLines)
		if err != nil {
			return nil, err
		}
		if err := v.MergeConfigMap(settings); err != nil {
			return nil, &ConfigError{Where: file, Err: err}
		}
	}
	if err := l.checkEnv(); err != nil {
		return nil, err
	}
	if err := v.Unmarshal(cfg, decoderOptions); err != nil {
		return nil, res.decodeError(err)
	}
	if err := res.readSecretFiles(v, reflect.ValueOf(cfg)); err != nil {
		return nil, err
	}
	if val, ok := cfg.(interface{ Validate() error }); ok {
		if err := val.Validate(); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return nil, &ConfigError{Where: res.source(fe.Key), Key: fe.Key, Err: fe.Err}
			}
			return nil, &ConfigError{Err: err}
		}
	}
	return res, nil
}

// decodeError blames the first key, in schema order, whose value did not
// decode, on the source it came from.
func (res *loaded) decodeError(err error) error {
	byKey := map[string]error{}
	var walk func(error)
	walk = func(e error) {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) && e == error(de) {
			byKey[de.Name()] = de.Unwrap()
			return
		}
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, c := range u.Unwrap() {
				walk(c)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	for _, f := range res.l.schema.fields {
		if e, ok := byKey[f.key]; ok {
			return &ConfigError{Where: res.source(f.key), Key: f.key, Err: e}
		}
	}
	return &ConfigError{Err: err}
}

// readSecretFiles fills each secret from its <key>_file when that is set.
func (res *loaded) readSecretFiles(v *viper.Viper, rv reflect.Value) error {
	for _, f := range res.l.schema.fields {
		if f.fileOf == "" || res.source(f.key) == "default" {
			continue
		}
		path, err := convert(v.Get(f.key), f.typ)
		if err != nil {
			return &ConfigError{Where: res.source(f.key), Key: f.key, Err: err}
		}
		if path.String() == "" {
			continue
		}
		target := res.l.schema.byKey[f.fileOf]
		if !target.value(rv).IsZero() {
			return &ConfigError{Key: f.fileOf, Err: fmt.Errorf("set either %s (%s) or %s (%s), not both",
				f.fileOf, res.source(f.fileOf), f.key, res.source(f.key))}
		}
		value, err := secret.FromFile(os.ReadFile, path.String())
		if err != nil {
			return &ConfigError{Where: res.source(f.key), Key: f.key, Err: err}
		}
		val, err := convert(value, target.typ)
		if err != nil {
			return &ConfigError{Where: res.source(f.key), Key: f.fileOf, Err: err}
		}
		target.value(rv).Set(val)
		res.secretFiles[f.key] = path.String()
	}
	return nil
}

// checkEnv refuses WARREN_<BINARY>_* variables that name no key: a typo in
// a systemd unit should not be silently ignored.
func (l *loader) checkEnv() error {
	known := map[string]bool{l.configEnv(): true}
	for _, f := range l.schema.fields {
		known[envName(l.prefix, f.key)] = true
	}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, l.prefix+"_") || known[name] {
			continue
		}
		msg := "unknown setting"
		key := strings.ToLower(strings.TrimPrefix(name, l.prefix+"_"))
		for k, hint := range l.schema.removed {
			if envName(l.prefix, k) == name {
				return &ConfigError{Where: "env " + name, Err: fmt.Errorf("key %q was removed: %s", k, hint)}
			}
		}
		if s := l.schema.suggest(key); s != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", envName(l.prefix, s))
		}
		return &ConfigError{Where: "env " + name, Err: errors.New(msg)}
	}
	return nil
}

// source says where the effective value of key comes from.
func (res *loaded) source(key string) string {
	if fl := res.l.flags[key]; fl != nil && fl.Changed {
		return "flag --" + fl.Name
	}
	if name := envName(res.l.prefix, key); os.Getenv(name) != "" {
		return "env " + name
	}
	if line, ok := res.fileLines[key]; ok {
		return fmt.Sprintf("%s:%d", res.file, line)
	}
	return "default"
}

// readYAML parses the file once: it rejects unknown keys and wrongly
// typed values, naming the key, the file and the line, records the line
// of every key it saw, and returns the settings for viper.
func readYAML(file string, data []byte, s *schema, lines map[string]int) (map[string]any, error) {
	settings := map[string]any{}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{Where: file, Err: err}
	}
	if len(doc.Content) == 0 {
		return settings, nil // empty file
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return settings, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &ConfigError{Where: fmt.Sprintf("%s:%d", file, root.Line), Err: errors.New("the top level must be a mapping of keys to values")}
	}
	if err := readMapping(file, root, "", s, lines, settings); err != nil {
		return nil, err
	}
	return settings, nil
}

func readMapping(file string, n *yaml.Node, prefix string, s *schema, lines map[string]int, out map[string]any) error {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := prefix + k.Value
		where := fmt.Sprintf("%s:%d", file, k.Line)
		if seen[key] {
			return &ConfigError{Where: where, Key: key, Err: errors.New("key appears twice")}
		}
		seen[key] = true
		if f, ok := s.byKey[key]; ok {
			var raw any
			if err := val.Decode(&raw); err != nil {
				return &ConfigError{Where: where, Key: key, Err: err}
			}
			if _, err := convert(raw, f.typ); err != nil {
				return &ConfigError{Where: where, Key: key, Err: err}
			}
			lines[key] = k.Line
			out[k.Value] = raw
			continue
		}
		if s.sections[key] {
			if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
				continue
			}
			if val.Kind != yaml.MappingNode {
				return &ConfigError{Where: where, Key: key, Err: errors.New("expected a mapping of keys")}
			}
			sub := map[string]any{}
			if err := readMapping(file, val, key+".", s, lines, sub); err != nil {
				return err
			}
			out[k.Value] = sub
			continue
		}
		return &ConfigError{Where: where, Err: s.unknownKeyError(key)}
	}
	return nil
}
