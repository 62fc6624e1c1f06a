-- hashguard store schema, version 1.
-- ONE schema for SQLite and PostgreSQL: only types and syntax both accept identically
-- (TEXT, BIGINT, composite primary keys, partial unique indexes, CHECK constraints), no
-- auto-increment (keys are natural: bank name, version number, value), no dialect-specific
-- functions. Hash values are lowercase hex TEXT: portable, readable in either shell, and
-- comparable with the list files they came from.

CREATE TABLE banks (
    name         TEXT PRIMARY KEY,
    organisation TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    signal_type  TEXT NOT NULL CHECK (signal_type IN ('pdq', 'md5', 'sha256')),
    threshold    BIGINT NOT NULL CHECK (threshold >= 0),
    enabled      BIGINT NOT NULL CHECK (enabled IN (0, 1)),
    kind         TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    created_at   BIGINT NOT NULL
);

-- One row per imported list version: the audit trail of who imported what, when, from which
-- file (SHA-256 of its bytes), and what it changed.
CREATE TABLE list_versions (
    bank        TEXT NOT NULL REFERENCES banks (name),
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
    PRIMARY KEY (bank, version)
);

-- Entries with their history: a row is live while removed_in IS NULL; a tombstone records the
-- version that removed it. A value removed and later listed again has one row per lifetime.
CREATE TABLE entries (
    bank       TEXT NOT NULL,
    value      TEXT NOT NULL,
    added_in   BIGINT NOT NULL,
    removed_in BIGINT,
    quality    BIGINT CHECK (quality IS NULL OR (quality >= 50 AND quality <= 100)),
    source_id  TEXT,
    category   TEXT,
    tags       TEXT NOT NULL,
    PRIMARY KEY (bank, value, added_in),
    FOREIGN KEY (bank, added_in) REFERENCES list_versions (bank, version),
    CHECK (removed_in IS NULL OR removed_in > added_in)
);

-- At most one live row per value and bank.
CREATE UNIQUE INDEX entries_live ON entries (bank, value) WHERE removed_in IS NULL;
