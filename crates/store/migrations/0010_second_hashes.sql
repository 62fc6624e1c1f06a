-- hashguard store schema, version 10: the second hash of listed PDQ entries (issue 17, item 6;
-- docs/second-hash.md). The automatic check and the post-threshold pipeline compare the
-- decrypted visual derivative's second hash with the second hash of the SAME listed entry's
-- original (protocol.md R/E12 step 2). It is the server's private companion of a bank entry:
-- it is never published with the table, so no client holds it.
--
-- `value` is the entry's PDQ hash (lowercase hex, as in `entries`); `second` is the dhash-hv
-- hash of the listed original's derivative (32 lowercase hex digits). A value keeps its second
-- hash across list versions (a re-listed value is the same picture). No foreign key: deleting
-- and renaming a bank move these rows explicitly, as they do the entries.
CREATE TABLE second_hashes (
    bank     TEXT NOT NULL,
    value    TEXT NOT NULL,
    second   TEXT NOT NULL CHECK (length(second) = 32),
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (bank, value)
);
