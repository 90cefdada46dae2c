// Package secret reads secrets that configuration names instead of
// holding: <key>_file (a file holding the secret) and, for probe checks,
// <key>_env (an environment variable holding it). The cli's config loader
// and probe's check parameters both read them here, so the two accept the
// same files and say the same thing when one is empty.
//
// The caller passes the reading function (os.ReadFile, os.LookupEnv), so
// engines below internal/cli touch neither the filesystem nor the
// environment themselves.
package secret
