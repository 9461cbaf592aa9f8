-- District authority ("phân quyền điều hành"): a staff account may be limited to one
-- district and its communes. NULL is the whole province (as before). It names a
-- district of the roster (the store checks the kind); an admin is never scoped.
ALTER TABLE users ADD COLUMN district_code text REFERENCES endpoints (code);
ALTER TABLE users ADD CONSTRAINT users_admin_unscoped CHECK (district_code IS NULL OR role <> 'admin');
