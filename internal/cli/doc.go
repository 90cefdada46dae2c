// Package cli is the command-line layer shared by all six warren binaries.
//
// It is the only place that touches flags, environment variables, config
// files, stdout/stderr, signals and exit codes. Each binary has its own
// package below this one (internal/cli/relayserver, ...) that describes its
// commands and its config struct; this package turns that description into a
// cobra command tree with the conventions every binary follows:
//
//   - --config/-c FILE, else ./<binary>.yaml, $XDG_CONFIG_HOME/warren/<binary>.yaml,
//     /etc/warren/<binary>.yaml; precedence flag > env > file > default, with
//     env names WARREN_<BINARY>_<KEY> for every key, nested ones included;
//   - strict YAML: unknown keys and wrong types are errors naming key and file;
//   - <key>_file for secrets; `config validate` and `config show` (redacted);
//   - `version` / --version, shell completion, --log-level, --log-format;
//   - SIGINT/SIGTERM graceful stop under --shutdown-timeout, a second signal
//     stops at once, SIGHUP reloads;
//   - errors mapped to exit codes in one place (exitCode, errors.go).
//
// Loading: viper carries precedence, the env binding and decoding
// (viper.Unmarshal, with convert as its one decode hook); the loader adds
// what viper lacks: file:line in errors and "did you mean" for unknown keys
// (readYAML), unknown WARREN_<BINARY>_* variables refused (checkEnv), where
// each value came from (source), and <key>_file secrets (internal/secret).
//
// A config struct is described with struct tags:
//
//	yaml:"name"          the key (",inline" merges an embedded struct)
//	flag:"name[,x]"      also settable by --name (and -x)
//	usage:"..."          one line of help, used for the flag and `config show`
//	secret:"true"        redacted in output, and settable as <key>_file
package cli
