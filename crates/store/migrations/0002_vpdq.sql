-- hashguard store schema, version 2: vPDQ banks.
--
-- 1. `banks.signal_type` also accepts 'vpdq'.
-- 2. `entries.payload` holds a value too long to be a key: for a vPDQ entry, `value` is the
--    SHA-256 (lowercase hex) of the video's canonical signal_str and `payload` is that
--    signal_str (the JSON list of frames). A PostgreSQL B-tree entry cannot exceed about 2.7 kB,
--    so the signal_str itself (77 bytes per frame) cannot be in the primary key or the
--    live-value index; its digest can. For the other types `payload` is NULL and `value` is the
--    hex value, as before.
--
-- Neither SQLite nor the SQL both databases share can change a CHECK constraint in place, so
-- the three tables are rebuilt (same columns, same keys, plus `payload`) and renamed back, in
-- the migration's transaction: children are dropped before their parents, so no foreign key is
-- ever violated, and both databases carry the new tables' foreign keys over the renames
-- (PostgreSQL by table identity, SQLite by rewriting the REFERENCES clauses). Constraint names
-- are given explicitly (`*_pk`) so that they do not clash with the old tables' while both exist.

CREATE TABLE banks_v2 (
    name         TEXT NOT NULL,
    organisation TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    signal_type  TEXT NOT NULL CHECK (signal_type IN ('pdq', 'md5', 'sha256', 'vpdq')),
    threshold    BIGINT NOT NULL CHECK (threshold >= 0),
    enabled      BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    kind         TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    created_at   BIGINT NOT NULL,
    CONSTRAINT banks_pk PRIMARY KEY (name)
);
INSERT INTO banks_v2 (name, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at)
    SELECT name, organisation, jurisdiction, signal_type, threshold, enabled, kind, created_at FROM banks;

CREATE TABLE list_versions_v2 (
    bank        TEXT NOT NULL REFERENCES banks_v2 (name),
    version     BIGINT NOT NULL CHECK (version >= 1),
    imported_at BIGINT NOT NULL,
    imported_by TEXT NOT NULL,
    source_name TEXT,
    file_sha256 TEXT NOT NULL,
    format      TEXT NOT NULL,
    items       BIGINT NOT NULL,
    added       BIGINT NOT NULL,
    removed     BIGINT NOT NULL,
    unchanged   BIGINT NOT NULL,
    CONSTRAINT list_versions_pk PRIMARY KEY (bank, version)
);
INSERT INTO list_versions_v2 (bank, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged)
    SELECT bank, version, imported_at, imported_by, source_name, file_sha256, format, items, added, removed, unchanged FROM list_versions;

CREATE TABLE entries_v2 (
    bank       TEXT NOT NULL,
    value      TEXT NOT NULL,
    added_in   BIGINT NOT NULL,
    removed_in BIGINT,
    quality    BIGINT CHECK (quality IS NULL OR (quality >= 50 AND quality <= 100)),
    source_id  TEXT,
    category   TEXT,
    tags       TEXT NOT NULL,
    payload    TEXT,
    CONSTRAINT entries_pk PRIMARY KEY (bank, value, added_in),
    FOREIGN KEY (bank, added_in) REFERENCES list_versions_v2 (bank, version),
    CHECK (removed_in IS NULL OR removed_in > added_in)
);
INSERT INTO entries_v2 (bank, value, added_in, removed_in, quality, source_id, category, tags, payload)
    SELECT bank, value, added_in, removed_in, quality, source_id, category, tags, NULL FROM entries;

DROP INDEX entries_live;
DROP TABLE entries;
DROP TABLE list_versions;
DROP TABLE banks;

ALTER TABLE banks_v2 RENAME TO banks;
ALTER TABLE list_versions_v2 RENAME TO list_versions;
ALTER TABLE entries_v2 RENAME TO entries;

-- At most one live row per value and bank.
CREATE UNIQUE INDEX entries_live ON entries (bank, value) WHERE removed_in IS NULL;
