package cli

import (
	"bytes"
	"encoding"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// convert turns a value as it comes from YAML, the environment or a flag
// into a value of type t. One function for every source, so a key accepts
// the same spellings wherever it is set; it runs as viper.Unmarshal's
// decode hook (decodeHook) and on each value of the file (readYAML).
//
// It is stricter than mapstructure's own conversions, which viper uses by
// default and which would take 1.5 for an int (as 1), 300 for an int8 (as
// 44), a bare 30 for a duration (as 30ns), true for a string (as "1") and
// "a, b" for a list (as "a", " b").
func convert(in any, t reflect.Type) (reflect.Value, error) {
	if in != nil && reflect.TypeOf(in) == t {
		return reflect.ValueOf(in), nil // already typed, e.g. from a pflag
	}
	out := reflect.New(t)
	if out.Type().Implements(textUnmarshalerType) {
		s, ok := scalarString(in)
		if !ok {
			return out, fmt.Errorf("expected %s, got %s", typeName(t), describe(in))
		}
		if err := out.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return out, err
		}
		return out.Elem(), nil
	}
	fail := func() (reflect.Value, error) {
		return out, fmt.Errorf("expected %s, got %s", typeName(t), describe(in))
	}
	switch {
	case t == durationType:
		s, ok := in.(string)
		if !ok {
			// A bare number is ambiguous (seconds? nanoseconds?); make the user say.
			return fail()
		}
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fail()
		}
		out.Elem().SetInt(int64(d))
		return out.Elem(), nil
	}
	switch t.Kind() {
	case reflect.String:
		s, ok := scalarString(in)
		if !ok {
			return fail()
		}
		out.Elem().SetString(s)
	case reflect.Bool:
		switch v := in.(type) {
		case bool:
			out.Elem().SetBool(v)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fail()
			}
			out.Elem().SetBool(b)
		default:
			return fail()
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, ok := toInt(in)
		if !ok || out.Elem().OverflowInt(n) {
			return fail()
		}
		out.Elem().SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, ok := toInt(in)
		if !ok || n < 0 || out.Elem().OverflowUint(uint64(n)) {
			return fail()
		}
		out.Elem().SetUint(uint64(n))
	case reflect.Float32, reflect.Float64:
		switch v := in.(type) {
		case float64:
			out.Elem().SetFloat(v)
		case int:
			out.Elem().SetFloat(float64(v))
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return fail()
			}
			out.Elem().SetFloat(f)
		default:
			return fail()
		}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return stringList(in, t, fail)
		}
		return viaYAML(in, t)
	default:
		return viaYAML(in, t)
	}
	return out.Elem(), nil
}

func stringList(in any, t reflect.Type, fail func() (reflect.Value, error)) (reflect.Value, error) {
	var items []string
	switch v := in.(type) {
	case nil:
	case string:
		// From env or a flag: comma-separated.
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				items = append(items, p)
			}
		}
	case []string:
		items = v
	case []any:
		for _, e := range v {
			s, ok := scalarString(e)
			if !ok {
				return fail()
			}
			items = append(items, s)
		}
	default:
		return fail()
	}
	out := reflect.MakeSlice(t, len(items), len(items))
	for i, s := range items {
		out.Index(i).SetString(s)
	}
	return out, nil
}

// viaYAML handles structured values (lists of structs, maps): a string (from
// env) is parsed as YAML, so JSON works too; anything else is re-encoded.
func viaYAML(in any, t reflect.Type) (reflect.Value, error) {
	var doc []byte
	if s, ok := in.(string); ok {
		doc = []byte(s)
	} else {
		b, err := yaml.Marshal(in)
		if err != nil {
			return reflect.Value{}, err
		}
		doc = b
	}
	out := reflect.New(t)
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(out.Interface()); err != nil && err.Error() != "EOF" {
		return out, fmt.Errorf("expected %s: %w", typeName(t), err)
	}
	return out.Elem(), nil
}

func toInt(in any) (int64, bool) {
	switch v := in.(type) {
	case int:
		return int64(v), true
	case int64:
		return v, true
	case uint64:
		if v > math.MaxInt64 {
			return 0, false
		}
		return int64(v), true
	case float64:
		if v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, false
		}
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(strings.ReplaceAll(v, "_", "")), 0, 64)
		return n, err == nil
	}
	return 0, false
}

func scalarString(in any) (string, bool) {
	switch v := in.(type) {
	case string:
		return v, true
	case bool, int, int64, uint64, float64:
		return fmt.Sprint(v), true
	case nil:
		return "", true
	}
	return "", false
}

func describe(in any) string {
	switch v := in.(type) {
	case string:
		return strconv.Quote(v)
	case nil:
		return "nothing"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	default:
		return fmt.Sprintf("%v", v)
	}
}

// typeName names a config type the way a user would.
func typeName(t reflect.Type) string {
	if t == durationType {
		return "a duration such as 30s or 5m"
	}
	if n, ok := reflect.New(t).Interface().(interface{ TypeHint() string }); ok {
		return n.TypeHint()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "a list of strings"
		}
		return "a list"
	case reflect.Map:
		return "a mapping"
	}
	return t.String()
}
