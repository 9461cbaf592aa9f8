-- The duty log's schema. Each migration runs in its own transaction (tern).
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- unaccent() is only STABLE; an IMMUTABLE wrapper with a fixed dictionary can be indexed.
CREATE FUNCTION f_unaccent(text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
    AS $$ SELECT public.unaccent('public.unaccent'::regdictionary, lower($1)) $$;

CREATE TABLE endpoints (
    code            text PRIMARY KEY CHECK (code ~ '^[0-9]{2}$|^[0-9]{3}$|^[0-9]{5}$'),
    name            text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('province', 'district', 'commune')),
    unit_type       text NOT NULL DEFAULT '',
    parent_code     text REFERENCES endpoints (code),
    roster_date     date NOT NULL,
    token_hash      bytea UNIQUE,
    token_issued_at timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX endpoints_parent ON endpoints (parent_code);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9._-]{2,64}$'),
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'leader', 'duty', 'observer')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Login sessions of staff and of endpoints that exchanged their join link.
CREATE TABLE auth_sessions (
    token_hash    bytea PRIMARY KEY,
    user_id       bigint REFERENCES users (id) ON DELETE CASCADE,
    endpoint_code text REFERENCES endpoints (code),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    CHECK ((user_id IS NULL) <> (endpoint_code IS NULL))
);
CREATE INDEX auth_sessions_endpoint ON auth_sessions (endpoint_code);

CREATE TABLE sessions (
    id            uuid PRIMARY KEY,
    title         text NOT NULL,
    planned_start timestamptz NOT NULL,
    planned_end   timestamptz NOT NULL CHECK (planned_end > planned_start),
    actual_start  timestamptz,
    actual_end    timestamptz,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (actual_end IS NULL OR actual_start IS NOT NULL)
);
-- At most one session in progress, enforced by the database itself.
CREATE UNIQUE INDEX sessions_one_in_progress ON sessions ((true))
    WHERE actual_start IS NOT NULL AND actual_end IS NULL;

CREATE TABLE incidents (
    id            uuid PRIMARY KEY,
    session_id    uuid NOT NULL REFERENCES sessions (id),
    endpoint_code text NOT NULL REFERENCES endpoints (code),
    category      text NOT NULL CHECK (category IN ('security_order', 'health_covid', 'complaint', 'logistics', 'communications', 'other')),
    severity      text NOT NULL CHECK (severity IN ('info', 'low', 'high', 'critical')),
    title         text NOT NULL,
    body          text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'in_progress', 'resolved', 'closed')),
    assignee      text NOT NULL DEFAULT '',
    occurred_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    version       integer NOT NULL DEFAULT 1,
    reported_by   text NOT NULL,
    -- Hash of the create request, so a retry with the same id and body is recognised.
    request_hash  bytea NOT NULL
);
CREATE INDEX incidents_list ON incidents (created_at DESC, id DESC);
CREATE INDEX incidents_session ON incidents (session_id, created_at DESC);
CREATE INDEX incidents_endpoint ON incidents (endpoint_code);
CREATE INDEX incidents_search ON incidents USING gin (f_unaccent(title || ' ' || body) gin_trgm_ops);

-- The system time of an incident never changes.
CREATE FUNCTION incidents_keep_created_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_at := OLD.created_at;
    NEW.id := OLD.id;
    RETURN NEW;
END $$;
CREATE TRIGGER incidents_keep_created_at BEFORE UPDATE ON incidents
    FOR EACH ROW EXECUTE FUNCTION incidents_keep_created_at();

CREATE TABLE incident_updates (
    id          bigserial PRIMARY KEY,
    incident_id uuid NOT NULL REFERENCES incidents (id),
    client_id   uuid UNIQUE,
    author      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('comment', 'change')),
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_updates_incident ON incident_updates (incident_id, id);

CREATE TABLE directives (
    id           uuid PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES sessions (id),
    issued_by    text NOT NULL,
    text         text NOT NULL,
    targets      jsonb NOT NULL,
    incident_id  uuid REFERENCES incidents (id),
    due_at       timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    request_hash bytea NOT NULL
);
CREATE INDEX directives_session ON directives (session_id, created_at DESC);

CREATE TABLE directive_receipts (
    directive_id  uuid NOT NULL REFERENCES directives (id),
    endpoint_code text NOT NULL REFERENCES endpoints (code),
    delivered_at  timestamptz,
    acked_at      timestamptz,
    acked_by      text,
    ack_via       text,
    done_at       timestamptz,
    reply         text,
    replied_by    text,
    replied_at    timestamptz,
    PRIMARY KEY (directive_id, endpoint_code)
);
CREATE INDEX directive_receipts_endpoint ON directive_receipts (endpoint_code, directive_id);

-- The audit log: append-only, gap-free ids in commit order, hash-chained.
CREATE TABLE chain_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   bigint NOT NULL,
    last_hash bytea NOT NULL
);
INSERT INTO chain_head (last_id, last_hash) VALUES (0, '\x'::bytea);

CREATE TABLE events (
    id         bigint PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    entity     text NOT NULL,
    entity_id  text NOT NULL,
    session_id uuid,
    before     jsonb,
    after      jsonb,
    prev_hash  bytea NOT NULL,
    hash       bytea NOT NULL
);
CREATE INDEX events_entity ON events (entity, entity_id);

-- One definition of the hash, used to append and to verify.
CREATE FUNCTION event_hash(prev bytea, id bigint, at timestamptz, actor text, action text,
                           entity text, entity_id text, session_id uuid, before jsonb, after jsonb)
    RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev || convert_to(concat_ws(E'\x1f', id::text,
        (extract(epoch FROM at) * 1000000)::bigint::text, actor, action, entity, entity_id,
        coalesce(session_id::text, ''), coalesce(before::text, 'null'), coalesce(after::text, 'null')), 'UTF8'))
$$;

CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only (% refused)', TG_OP;
END $$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();
