-- Schema version 1: what relay-server kept in SQLite's versions 1 and 2
-- (tunnels, ports, endpoints, API keys, signing keys, wing owners).
--
-- Times are timestamptz (microseconds, as store.TimePrecision). Lists are
-- text[]. Client JSON documents are bytea so their bytes are kept verbatim
-- (jsonb would normalise them).

CREATE TABLE tunnels (
	id             text        NOT NULL PRIMARY KEY,
	name           text        NOT NULL DEFAULT '',
	domain         text        NOT NULL DEFAULT '',
	description    text        NOT NULL DEFAULT '',
	labels         text[]      NOT NULL DEFAULT '{}',
	options        bytea,
	access_control bytea,
	created        timestamptz NOT NULL,
	updated        timestamptz NOT NULL,
	expiration     timestamptz
);

-- Names are unique only when set.
CREATE UNIQUE INDEX tunnels_name ON tunnels (name) WHERE name <> '';

CREATE TABLE ports (
	tunnel_id      text        NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
	number         integer     NOT NULL CHECK (number BETWEEN 1 AND 65535),
	name           text        NOT NULL DEFAULT '',
	description    text        NOT NULL DEFAULT '',
	protocol       text        NOT NULL DEFAULT '',
	ssh_user       text        NOT NULL DEFAULT '',
	labels         text[]      NOT NULL DEFAULT '{}',
	is_default     boolean     NOT NULL DEFAULT false,
	options        bytea,
	access_control bytea,
	created        timestamptz NOT NULL,
	updated        timestamptz NOT NULL,
	PRIMARY KEY (tunnel_id, number)
);

CREATE TABLE endpoints (
	tunnel_id        text        NOT NULL REFERENCES tunnels (id) ON DELETE CASCADE,
	id               text        NOT NULL,
	host_id          text        NOT NULL DEFAULT '',
	connection_mode  text        NOT NULL DEFAULT '',
	host_public_keys text[]      NOT NULL DEFAULT '{}',
	node             text        NOT NULL DEFAULT '',
	updated          timestamptz NOT NULL,
	PRIMARY KEY (tunnel_id, id)
);

CREATE INDEX endpoints_node ON endpoints (node);

CREATE TABLE api_keys (
	id      text        NOT NULL PRIMARY KEY,
	name    text        NOT NULL DEFAULT '',
	hash    bytea       NOT NULL,
	scopes  text[]      NOT NULL DEFAULT '{}',
	created timestamptz NOT NULL,
	revoked timestamptz
);

CREATE TABLE signing_keys (
	id      text        NOT NULL PRIMARY KEY,
	secret  bytea       NOT NULL,
	created timestamptz NOT NULL,
	retired timestamptz
);

CREATE TABLE wing_owners (
	wing_id text        NOT NULL PRIMARY KEY,
	user_id text        NOT NULL,
	created timestamptz NOT NULL
);
