-- The witness's state (hashguard-witness). Portable SQL: runs unchanged on SQLite and
-- PostgreSQL. Every statement may run twice (IF NOT EXISTS): two processes starting together
-- can both apply it.

-- The latest checkpoint cosigned per log: the compare-and-swap target of add-checkpoint.
CREATE TABLE IF NOT EXISTS witness_latest (
    origin TEXT PRIMARY KEY,
    size BIGINT NOT NULL,
    root TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Every checkpoint ever cosigned, one per (log, size): the witness never cosigns two trees of
-- one size. `note` is the log-signed checkpoint note as received.
CREATE TABLE IF NOT EXISTS witness_history (
    origin TEXT NOT NULL,
    size BIGINT NOT NULL,
    root TEXT NOT NULL,
    note TEXT NOT NULL,
    cosigned_at BIGINT NOT NULL,
    PRIMARY KEY (origin, size)
);

-- Fork evidence: a log-signed checkpoint whose root differs from the one cosigned for the same
-- size. With the history row it is a proof, checkable by anyone with the log's key, that the
-- log signed two different trees of one size.
CREATE TABLE IF NOT EXISTS witness_forks (
    origin TEXT NOT NULL,
    size BIGINT NOT NULL,
    cosigned_root TEXT NOT NULL,
    other_root TEXT NOT NULL,
    note TEXT NOT NULL,
    source TEXT NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (origin, size, other_root)
);
