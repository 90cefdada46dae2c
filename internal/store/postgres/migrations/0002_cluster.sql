-- Schema version 2: the node registry and the records nodes own besides
-- endpoints. Owned records name their node with no foreign key: a record
-- may outlive its node until a reaper releases it.

CREATE TABLE nodes (
	id           text        NOT NULL PRIMARY KEY,
	instance     text        NOT NULL,
	internal_url text        NOT NULL DEFAULT '',
	public_url   text        NOT NULL DEFAULT '',
	started      timestamptz NOT NULL,
	renewed      timestamptz NOT NULL,
	expires      timestamptz NOT NULL
);

CREATE TABLE wing_registrations (
	wing_id text        NOT NULL PRIMARY KEY,
	node    text        NOT NULL,
	updated timestamptz NOT NULL
);

CREATE INDEX wing_registrations_node ON wing_registrations (node);

CREATE TABLE ticket_claims (
	ticket_id text        NOT NULL PRIMARY KEY,
	node      text        NOT NULL,
	created   timestamptz NOT NULL
);

CREATE INDEX ticket_claims_node ON ticket_claims (node);
