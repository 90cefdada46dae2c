// Package sqlite is the embedded backend of [store.Store]: one SQLite file,
// through the pure-Go driver modernc.org/sqlite, so relay-server needs no
// database server and release builds cross-compile with CGO_ENABLED=0.
//
// # Connections
//
// SQLite allows one writer at a time. Rather than let many connections race
// for the write lock and fail with SQLITE_BUSY, a DB funnels every write
// through a single connection (database/sql queues callers, honouring their
// contexts) whose transactions BEGIN IMMEDIATE. Reads use a small pool of
// separate, query-only connections: in WAL mode they never wait for the
// writer. busy_timeout covers the remaining case, another process holding
// the file (an operator's sqlite3 shell, a backup).
//
// The file is created 0600 in a directory created 0700 if missing; SQLite
// gives its -wal and -shm files the same mode. synchronous=FULL makes a
// committed write survive power loss, which write volumes this low afford.
//
// The special path ":memory:" opens a private in-memory database for tests.
// It lives in one connection, shared by reads and writes.
//
// # Schema
//
// The schema is versioned by PRAGMA user_version. Migrations are the
// embedded files migrations/NNNN_name.sql, numbered from 1 without gaps;
// Open applies the pending ones in a single transaction, so a failed
// migration leaves the database as it was. A database whose version is
// newer than this build knows is refused with [ErrSchemaTooNew] rather than
// used by code that does not understand it. Migrations must not change
// PRAGMA foreign_keys, which SQLite ignores inside a transaction.
package sqlite
