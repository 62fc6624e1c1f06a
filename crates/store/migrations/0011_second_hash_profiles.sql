-- hashguard store schema, version 11: the second hash gains its profile bits (docs/second-hash.md,
-- "Why the profiles"). Its text form grows from 32 to 40 lowercase hex digits (the gradients,
-- then the profiles), and a value of the earlier form cannot be converted: the profiles come from
-- the listed original, which the store never holds. So the earlier rows are kept, unchanged, in
-- `superseded_second_hashes` (nothing is lost; `hashguard list second-hash` computes the new form
-- from the original), and `second_hashes` starts empty with the new length check. Until an entry's
-- second hash is computed again, the automatic check says "not on file" for it, as for any entry
-- without one.
CREATE TABLE superseded_second_hashes AS SELECT bank, value, second, added_at, added_by FROM second_hashes;
CREATE TABLE second_hashes_with_profiles (
    bank     TEXT NOT NULL,
    value    TEXT NOT NULL,
    second   TEXT NOT NULL CHECK (length(second) = 40),
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (bank, value)
);
DROP TABLE second_hashes;
ALTER TABLE second_hashes_with_profiles RENAME TO second_hashes;
