// Package pgtest runs a real PostgreSQL for tests: the distribution's
// initdb and postgres binaries (Debian: /usr/lib/postgresql/<v>/bin) on a
// temporary data directory, listening on loopback TCP only, with password
// (SCRAM) authentication so tests use the same DSNs as production.
//
// One server is shared by a test package's run ([DSN] gives each test a
// fresh database on it); a test that stops and starts PostgreSQL gets a
// private server from [New]. A package using the shared server runs its
// tests through [Main], which stops the server after the tests and checks
// for leaked goroutines.
//
// PostgreSQL refuses to run as root. When the tests run as root the server
// runs as an unprivileged user (the distribution's "postgres" user, else
// "nobody"), its directory made in a place that user can reach and owned by
// it; the directory is removed when the server stops.
//
// Missing binaries skip the test, or fail it when WARREN_REQUIRE_TOOLS=1
// (package needtool).
package pgtest
