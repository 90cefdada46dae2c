// Package postgres is the [store.Store] backend for several relay nodes
// sharing one database: PostgreSQL through github.com/jackc/pgx/v5 and its
// connection pool.
//
// # Concurrency across nodes
//
// Nodes share nothing but the database, so every rule that SQLite gets from
// its single writer is enforced by PostgreSQL here: uniqueness by unique
// constraints (a losing insert is ErrExists), insert-if-absent claims by
// INSERT ... ON CONFLICT DO NOTHING followed by a read of the winner, moves
// of a registration by SELECT ... FOR UPDATE in a transaction, and reapers
// by a transaction-scoped advisory lock. Nothing relies on an in-process
// lock.
//
// # Schema
//
// Migrations are the embedded files migrations/NNNN_name.sql, numbered from
// 1 without gaps; the version applied is kept in warren_schema_version.
// Open applies the pending ones in one transaction under an advisory lock,
// so nodes starting together migrate once and a failed step leaves the
// database as it was. A database migrated by a newer build is refused with
// [ErrSchemaTooNew]; [DB.Check] reports a database whose version differs
// from this build's (a newer build migrated it under a running node) as
// store.ErrSchema.
//
// # Secrets
//
// The DSN carries the password. It is never logged: errors name the host,
// user and database the way pgx does, without the password.
package postgres
