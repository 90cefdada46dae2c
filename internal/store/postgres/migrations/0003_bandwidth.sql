-- Schema version 3: per-user wing bandwidth usage by calendar month (UTC),
-- so a monthly cap survives relay restarts and adds up across nodes.

CREATE TABLE bandwidth_usage (
	user_id text        NOT NULL,
	month   text        NOT NULL,
	bytes   bigint      NOT NULL,
	updated timestamptz NOT NULL,
	PRIMARY KEY (user_id, month)
);

CREATE INDEX bandwidth_usage_month ON bandwidth_usage (month);
