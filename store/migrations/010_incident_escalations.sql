-- The tree of nodes: an incident escalated to the parent node. The parent
-- records it under the same id (reported by this node's endpoint), so the id
-- links the two logs both ways; delivered_at is when the parent accepted it.
CREATE TABLE incident_escalations (
    incident_id  uuid PRIMARY KEY REFERENCES incidents (id),
    requested_by text NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz
);
CREATE INDEX incident_escalations_pending ON incident_escalations (requested_at) WHERE delivered_at IS NULL;
