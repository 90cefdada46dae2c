package cli

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Spec describes a binary to the shared layer.
type Spec struct {
	Name   string // binary name, e.g. "relay-server"
	Short  string // one line for --help
	Long   string // optional longer help
	Nagios bool   // exit codes follow the Nagios plugin contract (probe)

	// LocalRootFlags gives the flags of untagged config keys to the root
	// command (the daemon it runs) and to 'config validate|show' only, so
	// the other subcommands (admin clients) do not list serving flags as
	// global. Keys every command uses are tagged cmd:"*" (the log keys of
	// Logging are). Without it, untagged keys are flags of every command.
	LocalRootFlags bool
}

// App is one run of a binary: its streams, its logger and its configuration.
// Binary packages get an *App to build their command tree.
type App struct {
	Spec
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader

	// Logger writes to Stderr at the configured level and format. It is
	// usable before the config is loaded (info, text).
	Logger *slog.Logger

	level      *slog.LevelVar
	loader     *loader
	cfg        reflect.Value // pointer to the live config struct
	loaded     *loaded
	configFlag string
	reloads    []func(ctx context.Context, cfg any) error
	preflights map[string]func() error // by command name; "" is the root
	started    bool                    // a command's hooks ran: errors before this are usage errors
}

// Build makes a binary's command tree. It calls app.NewRoot once.
type Build func(app *App) *cobra.Command

// Main runs a binary with the process's streams and returns its exit code.
// cmd/<binary>/main.go is: os.Exit(cli.Main(spec, build, os.Args[1:])) or a
// wrapper of it.
func Main(spec Spec, build Build, args []string) int {
	return Run(context.Background(), spec, build, args, os.Stdin, os.Stdout, os.Stderr)
}

// Run is Main with explicit streams, for tests.
func Run(ctx context.Context, spec Spec, build Build, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &App{Spec: spec, Stdin: stdin, Stdout: stdout, Stderr: stderr, level: new(slog.LevelVar)}
	a.Logger = newLogger(stderr, "text", a.level)
	root := build(a)
	a.addCommandFlags(root)
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil && !a.started {
		// cobra found no command, bad arguments or bad flags before running anything.
		var ue *UsageError
		if !errors.As(err, &ue) {
			err = &UsageError{Err: err}
		}
	}
	code := exitCode(err, spec.Nagios)
	if err != nil {
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", spec.Name, err)
		}
		var ue *UsageError
		if errors.As(err, &ue) {
			fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", spec.Name)
		}
	}
	return code
}

// NewRoot makes the root command. cfg is a pointer to the binary's config
// struct holding its defaults; it is filled in before any RunE runs. run is
// the root's own action (a daemon's serve loop), or nil for a root that only
// groups subcommands.
func (a *App) NewRoot(cfg any, run func(cmd *cobra.Command, args []string) error) *cobra.Command {
	l, err := newLoader(a.Name, cfg)
	if err != nil {
		panic(err) // a programming error in the binary's config struct
	}
	a.loader = l
	a.cfg = reflect.ValueOf(cfg)
	info := buildVersion(a.Name)
	root := &cobra.Command{
		Use:           a.Name,
		Short:         a.Short,
		Long:          a.Long,
		Version:       info,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE:          run,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// cobra checks these after this hook; check them first so they
			// count as usage errors.
			if err := cmd.ValidateRequiredFlags(); err != nil {
				return &UsageError{Err: err}
			}
			if err := cmd.ValidateFlagGroups(); err != nil {
				return &UsageError{Err: err}
			}
			a.started = true
			if skipsConfig(cmd) {
				return nil
			}
			return a.loadConfig(cmd)
		},
	}
	if run != nil {
		root.Args = cobra.NoArgs
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.PersistentFlags().StringVarP(&a.configFlag, "config", "c", "", fmt.Sprintf(
		"config file (default: first of %s; env %s)", strings.Join(l.searchPath(), ", "), l.configEnv()))
	config := a.configCmd()
	for _, f := range l.schema.fields {
		switch {
		case f.flag == "":
		case f.cmd == globalCmd || (f.cmd == "" && !a.LocalRootFlags):
			a.addFlag(root.PersistentFlags(), f)
		case f.cmd == "":
			// The same flag on config validate|show, so they check and
			// show what the daemon would run with ('relay-server --dev
			// config validate' too, hence persistent on config).
			a.addFlag(root.Flags(), f)
			config.PersistentFlags().AddFlag(root.Flags().Lookup(f.flag))
		}
	}
	root.AddCommand(a.versionCmd(), config)
	return root
}

// globalCmd is the cmd tag of keys whose flags every command has.
const globalCmd = "*"

// Preflight registers the checks a command runs on its loaded config before
// it opens sockets (required keys, files that must exist, directories that
// must be creatable). cmd is the subcommand's name, "" for the root. The
// command calls check itself; 'config validate [cmd]' runs the same check,
// so the two cannot drift. check must not create files or bind ports.
func (a *App) Preflight(cmd string, check func() error) {
	if a.preflights == nil {
		a.preflights = map[string]func() error{}
	}
	a.preflights[cmd] = check
}

// addCommandFlags gives each subcommand the flags of the keys tagged
// cmd:"<its name>", so two subcommands can each have, say, --mode for
// different keys. A tag naming no command is a programming error.
func (a *App) addCommandFlags(root *cobra.Command) {
	if a.loader == nil {
		return
	}
	byName := map[string]*cobra.Command{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			byName[sub.Name()] = sub
			walk(sub)
		}
	}
	walk(root)
	for _, f := range a.loader.schema.fields {
		if f.flag == "" || f.cmd == "" || f.cmd == globalCmd {
			continue
		}
		c, ok := byName[f.cmd]
		if !ok {
			panic(fmt.Sprintf("config key %q: flag for unknown subcommand %q", f.key, f.cmd))
		}
		a.addFlag(c.Flags(), f)
	}
}

// skipsConfig is true for commands that must work with a broken config.
func skipsConfig(cmd *cobra.Command) bool {
	for c := cmd; c != nil; c = c.Parent() {
		switch c.Name() {
		case "version", "completion", "help", cobra.ShellCompRequestCmd, cobra.ShellCompNoDescRequestCmd:
			return true
		}
	}
	return false
}

// addFlag registers the flag of one config key. Its default is the config
// default; the env variable is named in the help so users find it.
func (a *App) addFlag(fs *pflag.FlagSet, f *field) {
	def := f.value(a.loader.defaults.Addr())
	usage := f.usage
	if usage == "" {
		usage = f.key
	}
	usage += " (env " + envName(a.loader.prefix, f.key) + ")"
	switch {
	case f.typ == durationType:
		fs.DurationP(f.flag, f.short, time.Duration(def.Int()), usage)
	case reflect.PointerTo(f.typ).Implements(textUnmarshalerType):
		fs.StringP(f.flag, f.short, displayValue(def), usage)
	case f.typ.Kind() == reflect.Bool:
		fs.BoolP(f.flag, f.short, def.Bool(), usage)
	case f.typ.Kind() == reflect.Int:
		fs.IntP(f.flag, f.short, int(def.Int()), usage)
	case f.typ.Kind() >= reflect.Int8 && f.typ.Kind() <= reflect.Int64:
		fs.Int64P(f.flag, f.short, def.Int(), usage)
	case f.typ.Kind() >= reflect.Uint && f.typ.Kind() <= reflect.Uint64:
		fs.Uint64P(f.flag, f.short, def.Uint(), usage)
	case f.typ.Kind() == reflect.Float64:
		fs.Float64P(f.flag, f.short, def.Float(), usage)
	case f.typ.Kind() == reflect.Slice && f.typ.Elem().Kind() == reflect.String:
		fs.StringSliceP(f.flag, f.short, def.Interface().([]string), usage)
	default:
		fs.StringP(f.flag, f.short, "", usage)
	}
	a.loader.flags[f.key] = fs.Lookup(f.flag)
}

// displayValue renders a config value for help and `config show`.
func displayValue(v reflect.Value) string {
	if m, ok := v.Interface().(encoding.TextMarshaler); ok {
		b, err := m.MarshalText()
		if err == nil {
			return string(b)
		}
	}
	if v.Type() == durationType {
		return formatDuration(time.Duration(v.Int()))
	}
	return fmt.Sprint(v.Interface())
}

// formatDuration drops the zero units time.Duration.String keeps: 5m, not 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func (a *App) loadConfig(cmd *cobra.Command) error {
	from := "flag --config"
	file, err := a.loader.findFile(a.configFlag, from)
	if err != nil {
		return err
	}
	res, err := a.loader.load(a.cfg.Interface(), file)
	if err != nil {
		return err
	}
	a.loaded = res
	a.applyLogging(a.cfg.Interface())
	return nil
}

func (a *App) applyLogging(cfg any) {
	if lg, ok := cfg.(interface{ logging() *Logging }); ok {
		l := lg.logging()
		a.level.Set(l.LogLevel.Level)
		a.Logger = newLogger(a.Stderr, l.LogFormat, a.level)
	}
}

// ConfigFile is the config file in use, or "" when none was found.
func (a *App) ConfigFile() string {
	if a.loaded == nil {
		return ""
	}
	return a.loaded.file
}

// Source says where the effective value of a config key came from: "flag
// --x", "env X", "file:line" or "default".
func (a *App) Source(key string) string {
	if a.loaded == nil {
		return "default"
	}
	return a.loaded.source(key)
}

// OnReload registers a hook run on SIGHUP with a freshly loaded and
// validated config (same type as the one given to NewRoot). The log level
// is reloaded by the shared layer before the hooks run.
func (a *App) OnReload(fn func(ctx context.Context, cfg any) error) {
	a.reloads = append(a.reloads, fn)
}

// reload re-reads the config; on any error the running config stays.
func (a *App) reload(ctx context.Context) {
	fresh := reflect.New(a.loader.defaults.Type())
	fresh.Elem().Set(a.loader.defaults)
	file, err := a.loader.findFile(a.configFlag, "flag --config")
	if err == nil {
		_, err = a.loader.load(fresh.Interface(), file)
	}
	if err != nil {
		a.Logger.Error("reload failed; keeping the running configuration", "err", err)
		return
	}
	if lg, ok := fresh.Interface().(interface{ logging() *Logging }); ok {
		a.level.Set(lg.logging().LogLevel.Level)
	}
	for _, fn := range a.reloads {
		if err := fn(ctx, fresh.Interface()); err != nil {
			a.Logger.Error("reload failed", "err", err)
			return
		}
	}
	a.Logger.Info("configuration reloaded", "file", file)
}
