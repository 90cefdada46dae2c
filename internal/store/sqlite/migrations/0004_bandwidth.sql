-- Schema version 4: per-user wing bandwidth usage by calendar month (UTC),
-- so a monthly cap survives relay restarts.

CREATE TABLE bandwidth_usage (
	user_id    TEXT    NOT NULL,
	month      TEXT    NOT NULL,
	bytes      INTEGER NOT NULL,
	updated_us INTEGER NOT NULL,
	PRIMARY KEY (user_id, month)
) STRICT, WITHOUT ROWID;

CREATE INDEX bandwidth_usage_month ON bandwidth_usage (month);
