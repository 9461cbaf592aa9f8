-- The video record's index: one row per file of the program or the floor. The files
-- live under recording.dir; path is relative to it. A row is never removed: a
-- deleted file keeps its row (state 'deleted'), so the record says what existed.
CREATE TABLE recordings (
    id          uuid PRIMARY KEY,
    session_id  uuid NOT NULL REFERENCES sessions (id),
    kind        text NOT NULL CHECK (kind IN ('program', 'floor', 'private_line')),
    source_code text NOT NULL DEFAULT '',
    path        text NOT NULL UNIQUE CHECK (path <> '' AND path NOT LIKE '/%' AND path NOT LIKE '%..%'),
    state       text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'repaired', 'deleted')),
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    size        bigint CHECK (size >= 0),
    sha256      text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    duration_ms bigint CHECK (duration_ms >= 0),
    width       integer,
    height      integer,
    -- Why a recording stopped early or had no media ("disk_low", "no_media", ...).
    note        text NOT NULL DEFAULT '',
    deleted_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (state = 'open' OR ended_at IS NOT NULL),
    CHECK ((state = 'deleted') = (deleted_at IS NOT NULL))
);
CREATE INDEX recordings_session ON recordings (session_id, started_at);
CREATE INDEX recordings_open ON recordings (state) WHERE state = 'open';
CREATE INDEX recordings_ended ON recordings (ended_at) WHERE state IN ('closed', 'repaired');
