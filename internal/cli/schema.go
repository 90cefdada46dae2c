package cli

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/warrenhq/warren/internal/suggest"
)

// field is one leaf key of a config struct.
type field struct {
	key    string // dotted path, e.g. "tls.cert_file"
	index  []int  // reflect index path from the root struct
	typ    reflect.Type
	usage  string
	flag   string // long flag name, "" if none
	short  string // one-letter shorthand, "" if none
	secret bool
	cmd    string // subcommand whose flag set holds the flag; "" for the root's persistent flags
	fileOf string // for a synthetic "<key>_file" field: the secret key it fills
}

// schema lists the keys of a config struct in declaration order.
type schema struct {
	fields   []*field
	byKey    map[string]*field
	sections map[string]bool   // dotted prefixes that hold nested keys
	removed  map[string]string // keys older versions had → what to do instead
}

// removedKeys is implemented by a config struct whose older versions had
// keys it no longer has: an old file or env setting one is refused with a
// hint rather than a bare "unknown key".
type removedKeys interface{ RemovedKeys() map[string]string }

// unknownKeyError explains an unknown key (dotted form), with a hint when
// it was removed or a suggestion when it looks like a known one.
func (s *schema) unknownKeyError(key string) error {
	if hint, ok := s.removed[key]; ok {
		return fmt.Errorf("key %q was removed: %s", key, hint)
	}
	msg := fmt.Sprintf("unknown key %q", key)
	if sug := s.suggest(key); sug != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", sug)
	}
	return errors.New(msg)
}

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func isLeaf(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	return t.Kind() != reflect.Struct
}

func newSchema(t reflect.Type) (*schema, error) {
	s := &schema{byKey: map[string]*field{}, sections: map[string]bool{}}
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("config type %s is not a struct", t)
	}
	if err := s.walk(t, "", "", nil); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *schema) walk(t reflect.Type, prefix, cmd string, index []int) error {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("yaml")
		if !ok || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		idx := append(append([]int(nil), index...), i)
		fcmd := cmd
		if c, ok := sf.Tag.Lookup("cmd"); ok {
			fcmd = c
		}
		if opts == "inline" {
			if err := s.walk(sf.Type, prefix, fcmd, idx); err != nil {
				return err
			}
			continue
		}
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		if !isLeaf(sf.Type) {
			s.sections[key] = true
			if err := s.walk(sf.Type, key+".", fcmd, idx); err != nil {
				return err
			}
			continue
		}
		f := &field{key: key, index: idx, typ: sf.Type, usage: sf.Tag.Get("usage"), secret: sf.Tag.Get("secret") == "true", cmd: fcmd}
		if fl := sf.Tag.Get("flag"); fl != "" {
			f.flag, f.short, _ = strings.Cut(fl, ",")
		}
		if f.secret {
			ff := &field{key: key + "_file", typ: reflect.TypeOf(""), fileOf: key, cmd: fcmd,
				usage: "file holding " + key + " (read at startup; trailing newline trimmed)"}
			if f.flag != "" {
				// Secrets never go on the command line; only their file does.
				ff.flag, f.flag, f.short = f.flag+"-file", "", ""
			}
			if err := s.add(f); err != nil {
				return err
			}
			if err := s.add(ff); err != nil {
				return err
			}
			continue
		}
		if err := s.add(f); err != nil {
			return err
		}
	}
	return nil
}

func (s *schema) add(f *field) error {
	if _, dup := s.byKey[f.key]; dup {
		return fmt.Errorf("config key %q declared twice", f.key)
	}
	s.fields = append(s.fields, f)
	s.byKey[f.key] = f
	return nil
}

// suggest returns the known key closest to an unknown one, or "".
func (s *schema) suggest(key string) string {
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return suggest.Closest(key, keys)
}

// value returns the addressable field of cfg (a pointer to the root struct).
func (f *field) value(cfg reflect.Value) reflect.Value {
	return cfg.Elem().FieldByIndex(f.index)
}

// envName is the environment variable for a key.
func envName(prefix, key string) string {
	return prefix + "_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}
