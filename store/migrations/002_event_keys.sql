-- Live-session actions are journalled on local disk while PostgreSQL is away and
-- replayed when it returns. Each carries a key, so a replay after a crash between
-- "written" and "removed from the journal" never writes an event twice.
ALTER TABLE events ADD COLUMN client_key uuid UNIQUE;
