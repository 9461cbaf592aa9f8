-- The tree of nodes: a directive a node's desk passes on to its own units names
-- the directive it relays (one that came from the parent node, kept in this
-- node's log under the parent's id).
ALTER TABLE directives ADD COLUMN relayed_from uuid REFERENCES directives (id);
