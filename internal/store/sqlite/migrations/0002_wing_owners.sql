-- Schema version 2: who owns each wing id (the user whose wing token first
-- registered it), so another user's wing cannot register under it.

CREATE TABLE wing_owners (
	wing_id    TEXT    NOT NULL PRIMARY KEY,
	user_id    TEXT    NOT NULL,
	created_us INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
