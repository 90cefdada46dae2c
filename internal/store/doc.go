// Package store is relay-server's persistent state: tunnels and their ports,
// the host endpoints registered on them, operator API keys, token signing
// keys, wing owners, and the cluster's node registry with the records each
// node owns (see [ClusterStore]).
//
// [Store] is the contract every backend implements. It speaks plain Go types
// and sentinel errors, never SQL, so callers are written once and a backend
// (embedded SQLite, package store/sqlite, the default; PostgreSQL, package
// store/postgres, where several relay nodes share one database) is picked
// at startup. Package store/storetest holds the
// conformance suite each backend runs to prove it honours the contract below.
//
// # Contract shared by all methods
//
//   - Errors match, with [errors.Is], at most one of [ErrNotFound],
//     [ErrExists] and [ErrInvalid]; anything else is a backend failure
//     (I/O, a cancelled context, ...). The text adds context for logs.
//   - Times are returned in UTC, truncated to [TimePrecision]. The store has
//     no clock: every Created, Updated, RevokedAt, ... is set by the caller.
//   - Slices and JSON documents round-trip by value; an empty one (nil or
//     zero length) is returned as nil. JSON is kept byte for byte as given,
//     so a backend must not normalise it (PostgreSQL: json or bytea, never
//     jsonb).
//   - Values passed in and values returned are never retained or shared by
//     the store: a caller may mutate either freely.
//   - A method given an empty key finds nothing (ErrNotFound); a value to
//     store that has an empty key is refused (ErrInvalid). Backends check
//     values with their Validate methods, so all accept the same ones.
//   - A Store is safe for concurrent use by many goroutines.
package store
