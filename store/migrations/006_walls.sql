-- The press wall: named wall links for the press room's screens. A wall receives
-- the program, the floor, turnout and session state; it is never an endpoint.
-- Only the link secret's SHA-256 is kept; revoking clears it (the row stays, so
-- the name's history is in the audit log and the table alike).
CREATE TABLE walls (
    id         bigserial PRIMARY KEY,
    name       text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    token_hash bytea UNIQUE,
    issued_at  timestamptz,
    revoked_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- A live wall has a secret and no revocation; a revoked one the reverse.
    CHECK ((token_hash IS NULL) = (revoked_at IS NOT NULL))
);

-- Sessions made from a wall link (the HttpOnly cookie of /wall). Reissuing or
-- revoking the wall deletes them, so its screens stop at once.
CREATE TABLE wall_sessions (
    token_hash bytea PRIMARY KEY,
    wall_id    bigint NOT NULL REFERENCES walls (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX wall_sessions_wall ON wall_sessions (wall_id);
