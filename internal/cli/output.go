package cli

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// Output is the -o/--output format of a reporting command.
type Output string

// Set implements pflag.Value.
func (o *Output) Set(s string) error {
	switch s {
	case "text", "json":
		*o = Output(s)
		return nil
	}
	return fmt.Errorf("expected text or json, got %q", s)
}

func (o *Output) String() string { return string(*o) }

// Type implements pflag.Value.
func (o *Output) Type() string { return "format" }

// JSON reports whether machine output was asked for.
func (o Output) JSON() bool { return o == "json" }

// AddOutputFlag gives cmd a -o/--output text|json flag.
func AddOutputFlag(cmd *cobra.Command) *Output {
	o := Output("text")
	cmd.Flags().VarP(&o, "output", "o", "output format: text or json")
	return &o
}

// WriteJSON writes v as indented JSON and a newline.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// WriteJSONLine writes v as one line of JSON, for event streams.
func WriteJSONLine(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
