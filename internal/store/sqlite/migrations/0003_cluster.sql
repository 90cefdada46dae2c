-- Schema version 3: the node registry and the records nodes own besides
-- endpoints (wing registrations, ticket claims). Owned records name their
-- node by id with no foreign key: a record may outlive its node until a
-- reaper releases it, and tests use stores without nodes.

CREATE TABLE nodes (
	id           TEXT    NOT NULL PRIMARY KEY,
	instance     TEXT    NOT NULL,
	internal_url TEXT    NOT NULL DEFAULT '',
	public_url   TEXT    NOT NULL DEFAULT '',
	started_us   INTEGER NOT NULL,
	renewed_us   INTEGER NOT NULL,
	expires_us   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE wing_registrations (
	wing_id    TEXT    NOT NULL PRIMARY KEY,
	node       TEXT    NOT NULL,
	updated_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX wing_registrations_node ON wing_registrations (node);

CREATE TABLE ticket_claims (
	ticket_id  TEXT    NOT NULL PRIMARY KEY,
	node       TEXT    NOT NULL,
	created_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX ticket_claims_node ON ticket_claims (node);
