-- The room's live state (floor, mutes, hands, private line, roll call, outages),
-- one JSON document rewritten on every change, so a standby process of the same
-- node can take the session over where the active one left it.
CREATE TABLE live_state (
    id       smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    doc      jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT now()
);

-- Which process of the node is active (it holds the node's advisory lock). The
-- standby reads url to send joins there; term grows at every takeover, so an
-- active that lost its lock connection can tell whether another took over.
CREATE TABLE node_active (
    id       smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    term     bigint NOT NULL,
    url      text NOT NULL,
    since    timestamptz NOT NULL DEFAULT now()
);
