-- A national roster's root (code 00, kind nation) above the provinces: a node
-- of the tree whose children are province nodes (DESIGN.md, beyond one machine).
-- Codes keep their digit-only check: 00 is no GSO province code.
ALTER TABLE endpoints DROP CONSTRAINT endpoints_kind_check;
ALTER TABLE endpoints ADD CONSTRAINT endpoints_kind_check
    CHECK (kind IN ('nation', 'province', 'district', 'commune'));

