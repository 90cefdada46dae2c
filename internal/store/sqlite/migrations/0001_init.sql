-- Schema version 1: relay-server's first schema.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC): exact, sortable,
-- and immune to the driver's text time formats. Lists are JSON arrays in
-- TEXT. Client JSON documents are BLOBs so their bytes are kept verbatim.
-- STRICT makes SQLite enforce the declared column types.

CREATE TABLE tunnels (
	id             TEXT    NOT NULL PRIMARY KEY,
	name           TEXT    NOT NULL DEFAULT '',
	domain         TEXT    NOT NULL DEFAULT '',
	description    TEXT    NOT NULL DEFAULT '',
	labels         TEXT    NOT NULL DEFAULT '[]',
	options        BLOB,
	access_control BLOB,
	created_us     INTEGER NOT NULL,
	updated_us     INTEGER NOT NULL,
	expiration_us  INTEGER
) STRICT;

-- Names are unique only when set; a partial index says exactly that.
CREATE UNIQUE INDEX tunnels_name ON tunnels (name) WHERE name <> '';

CREATE TABLE ports (
	tunnel_id      TEXT    NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
	number         INTEGER NOT NULL CHECK (number BETWEEN 1 AND 65535),
	name           TEXT    NOT NULL DEFAULT '',
	description    TEXT    NOT NULL DEFAULT '',
	protocol       TEXT    NOT NULL DEFAULT '',
	ssh_user       TEXT    NOT NULL DEFAULT '',
	labels         TEXT    NOT NULL DEFAULT '[]',
	is_default     INTEGER NOT NULL DEFAULT 0,
	options        BLOB,
	access_control BLOB,
	created_us     INTEGER NOT NULL,
	updated_us     INTEGER NOT NULL,
	PRIMARY KEY (tunnel_id, number)
) STRICT, WITHOUT ROWID;

CREATE TABLE endpoints (
	tunnel_id        TEXT    NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
	id               TEXT    NOT NULL,
	host_id          TEXT    NOT NULL DEFAULT '',
	connection_mode  TEXT    NOT NULL DEFAULT '',
	host_public_keys TEXT    NOT NULL DEFAULT '[]',
	node             TEXT    NOT NULL DEFAULT '',
	updated_us       INTEGER NOT NULL,
	PRIMARY KEY (tunnel_id, id)
) STRICT, WITHOUT ROWID;

-- A restarting node deletes its endpoints by node.
CREATE INDEX endpoints_node ON endpoints (node);

CREATE TABLE api_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL DEFAULT '',
	hash       BLOB    NOT NULL,
	scopes     TEXT    NOT NULL DEFAULT '[]',
	created_us INTEGER NOT NULL,
	revoked_us INTEGER
) STRICT;

CREATE TABLE signing_keys (
	id         TEXT    NOT NULL PRIMARY KEY,
	secret     BLOB    NOT NULL,
	created_us INTEGER NOT NULL,
	retired_us INTEGER
) STRICT;
