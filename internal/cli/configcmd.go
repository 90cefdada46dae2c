package cli

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/warrenhq/warren/internal/redact"
)

func (a *App) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check or print the effective configuration",
		Args:  cobra.NoArgs,
	}
	validate := &cobra.Command{
		Use:   "validate [COMMAND]",
		Short: "Load the configuration (file, env, flags) and report the first problem; exit 2 if any",
		Long: `validate loads the configuration from file, env and flags and runs the checks
the daemon runs before it opens sockets (required keys, files that must exist,
directories it must be able to create), without creating anything. It reports
the first problem with the key and where it was set, and exits 2.

With COMMAND, it runs that subcommand's checks instead of the root's (for a
binary whose daemon is a subcommand, such as 'wing config validate serve').`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
				if _, ok := a.preflights[name]; !ok {
					var known []string
					for k := range a.preflights {
						if k != "" {
							known = append(known, k)
						}
					}
					sort.Strings(known)
					if len(known) == 0 {
						return Usagef("config validate %s: no checks for that command; run config validate without one", name)
					}
					return Usagef("config validate %s: no checks for that command (have: %s)", name, strings.Join(known, ", "))
				}
			}
			if check := a.preflights[name]; check != nil {
				if err := check(); err != nil {
					return err
				}
			}
			file := a.ConfigFile()
			if file == "" {
				file = "no config file; defaults, env and flags"
			}
			_, err := fmt.Fprintf(a.Stdout, "configuration ok (%s)\n", file)
			return err
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration as YAML (secrets redacted)",
		Args:  cobra.NoArgs,
	}
	out := AddOutputFlag(show)
	show.RunE = func(cmd *cobra.Command, _ []string) error {
		if out.JSON() {
			return WriteJSON(a.Stdout, a.effective(func(v reflect.Value) any { return jsonValue(v) }))
		}
		enc := yaml.NewEncoder(a.Stdout)
		enc.SetIndent(2)
		if err := enc.Encode(a.effectiveYAML()); err != nil {
			return err
		}
		return enc.Close()
	}
	cmd.AddCommand(validate, show)
	return cmd
}

// shown returns the value of a field for output, with secrets redacted.
func (a *App) shown(f *field) (reflect.Value, bool) {
	if f.fileOf != "" {
		// A path is not a secret: show it.
		path := ""
		if a.loaded != nil {
			path = a.loaded.secretFiles[f.key]
		}
		return reflect.ValueOf(path), true
	}
	v := f.value(a.cfg)
	if f.secret && !v.IsZero() {
		return reflect.ValueOf(redact.Placeholder), true
	}
	if v.Kind() == reflect.String {
		if s, ok := redact.URLPassword(v.String()); ok {
			return reflect.ValueOf(s), true
		}
	}
	return v, true
}

// effective renders the config as nested maps keyed like the YAML.
func (a *App) effective(render func(reflect.Value) any) map[string]any {
	out := map[string]any{}
	for _, f := range a.loader.schema.fields {
		v, ok := a.shown(f)
		if !ok {
			continue
		}
		m := out
		parts := splitKey(f.key)
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = render(v)
	}
	return out
}

func jsonValue(v reflect.Value) any {
	if v.Type() == durationType {
		return formatDuration(time.Duration(v.Int()))
	}
	if _, ok := v.Interface().(interface{ MarshalText() ([]byte, error) }); ok {
		return displayValue(v)
	}
	return v.Interface()
}

// effectiveYAML keeps schema order, which a map would lose.
func (a *App) effectiveYAML() *yaml.Node {
	root := &yaml.Node{Kind: yaml.MappingNode}
	sections := map[string]*yaml.Node{"": root}
	for _, f := range a.loader.schema.fields {
		v, ok := a.shown(f)
		if !ok {
			continue
		}
		parts := splitKey(f.key)
		parent := ""
		m := root
		for _, p := range parts[:len(parts)-1] {
			path := parent + p
			next, ok := sections[path]
			if !ok {
				next = &yaml.Node{Kind: yaml.MappingNode}
				m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p}, next)
				sections[path] = next
			}
			m, parent = next, path+"."
		}
		val := &yaml.Node{}
		if err := val.Encode(jsonValue(v)); err != nil {
			val = &yaml.Node{Kind: yaml.ScalarNode, Value: fmt.Sprint(v.Interface())}
		}
		if fc, ok := v.Interface().(interface{ ConfigFootComment() string }); ok {
			// Node.Encode keeps only line comments; a value that documents
			// itself at length (probe's checks examples) says so here.
			val.FootComment = fc.ConfigFootComment()
		}
		keyNode := &yaml.Node{Kind: yaml.ScalarNode, Value: parts[len(parts)-1]}
		keyNode.HeadComment = a.annotation(f)
		m.Content = append(m.Content, keyNode, val)
	}
	return root
}

func splitKey(k string) []string {
	var parts []string
	start := 0
	for i := 0; i < len(k); i++ {
		if k[i] == '.' {
			parts = append(parts, k[start:i])
			start = i + 1
		}
	}
	return append(parts, k[start:])
}

// annotation is the comment above a key in `config show`: its help and default.
func (a *App) annotation(f *field) string {
	def := ""
	if f.fileOf == "" {
		def = displayValue(f.value(a.loader.defaults.Addr()))
	}
	if def == "" || def == "[]" {
		def = "none"
	}
	if f.usage == "" {
		return "default: " + def
	}
	return f.usage + " (default: " + def + ")"
}
