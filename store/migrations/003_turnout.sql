-- Turnout: registered voters per commune (they belong to the dated roster, not to a
-- session) and the cumulative figures communes report during a session.
CREATE TABLE turnout_registered (
    endpoint_code text NOT NULL REFERENCES endpoints (code),
    roster_date   date NOT NULL,
    registered    integer NOT NULL CHECK (registered >= 0),
    -- Why the figure was last changed; required once the commune has reported.
    reason        text NOT NULL DEFAULT '',
    updated_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_code, roster_date)
);

CREATE TABLE turnout_reports (
    id            uuid PRIMARY KEY,
    -- Accept order: among reports with the same as_of, the later accepted wins.
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    session_id    uuid NOT NULL REFERENCES sessions (id),
    endpoint_code text NOT NULL REFERENCES endpoints (code),
    as_of         timestamptz NOT NULL,
    voted         integer NOT NULL CHECK (voted >= 0),
    complete      boolean NOT NULL DEFAULT false,
    -- How a staff member got the figure; NULL when the endpoint reported itself.
    via           text CHECK (via IN ('phone', 'radio', 'in_person', 'other')),
    -- A staff correction carries its reason; it may lower the figure.
    reason        text NOT NULL DEFAULT '',
    reported_by   text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    request_hash  bytea NOT NULL
);
CREATE INDEX turnout_reports_unit ON turnout_reports (session_id, endpoint_code, as_of, seq);
