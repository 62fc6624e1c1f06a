-- hashguard store schema, version 4: the state of the upload service (`hashguard serve`),
-- shared by every server process that uses the database.
--
-- Privacy (guarantee G1: the server learns nothing about uploads that do not match). These
-- tables hold bookkeeping for ciphertexts only: random ids, the owning account, the SHA-256 and
-- length of the ciphertext, its state, and times. The one thing derived from a voucher that is
-- kept is the record of a voucher that OPENED (`opened_records.record`). No column may be added
-- for anything else derived from a voucher.
--
-- Same portable subset as before: TEXT and BIGINT columns, natural keys (the random ids, or an
-- account with a sequence number), no auto-increment, partial unique indexes. Ids (16 random
-- bytes) and digests are lowercase hex TEXT; the opened record's bytes are lowercase hex TEXT
-- too, since SQLite's BLOB and PostgreSQL's BYTEA are not one type. Times are Unix seconds,
-- except the rate buckets' Unix milliseconds. Flags are 0/1 BIGINTs, as `banks.enabled`.

-- An account, and whether its share store is frozen (no more opened records are taken).
CREATE TABLE accounts (
    id            TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    shares_frozen BIGINT NOT NULL CHECK (shares_frozen IN (0, 1)),
    CONSTRAINT accounts_pk PRIMARY KEY (id)
);

-- A device of an account. The bearer token is never stored, only its SHA-256: a copy of the
-- database does not let anyone authenticate. The digest is unique, so a token names one device.
-- A revoked device keeps its row (and its token's digest), so the token stays refused.
CREATE TABLE devices (
    id         TEXT NOT NULL,
    account    TEXT NOT NULL REFERENCES accounts (id),
    token_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    CONSTRAINT devices_pk PRIMARY KEY (id),
    CONSTRAINT devices_token UNIQUE (token_hash)
);
CREATE INDEX devices_account ON devices (account);

-- An uploaded ciphertext: bookkeeping only, never its content.
CREATE TABLE attachments (
    id         TEXT NOT NULL,
    account    TEXT NOT NULL REFERENCES accounts (id),
    sha256     TEXT NOT NULL,
    length     BIGINT NOT NULL CHECK (length >= 0),
    state      TEXT NOT NULL CHECK (state IN ('stored', 'held', 'released', 'deleted')),
    created_at BIGINT NOT NULL,
    CONSTRAINT attachments_pk PRIMARY KEY (id)
);
CREATE INDEX attachments_account ON attachments (account);

-- An account's log of opened records, append-only and dense from seq 0. The primary key makes an
-- append at a seq another process took first fail, so two processes never both extend the log
-- from the same state.
CREATE TABLE opened_records (
    account    TEXT NOT NULL REFERENCES accounts (id),
    seq        BIGINT NOT NULL CHECK (seq >= 0),
    record     TEXT NOT NULL,
    attachment TEXT REFERENCES attachments (id),
    created_at BIGINT NOT NULL,
    CONSTRAINT opened_records_pk PRIMARY KEY (account, seq)
);

-- Review cases: a held attachment, or an account that reached the threshold. `detail` is JSON
-- chosen by the service.
CREATE TABLE cases (
    id         TEXT NOT NULL,
    account    TEXT NOT NULL REFERENCES accounts (id),
    kind       TEXT NOT NULL CHECK (kind IN ('held', 'threshold')),
    attachment TEXT REFERENCES attachments (id),
    state      TEXT NOT NULL CHECK (state IN ('held', 'check_released', 'check_blocked', 'queued', 'closed')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    detail     TEXT NOT NULL,
    CONSTRAINT cases_pk PRIMARY KEY (id)
);
-- The review queue reads by state, oldest first.
CREATE INDEX cases_queue ON cases (state, created_at);
-- At most one threshold case per account: two processes that both see none and both insert one
-- cannot both succeed.
CREATE UNIQUE INDEX cases_one_threshold ON cases (account) WHERE kind = 'threshold';

-- Append-only audit events, dense from seq 0 (the primary key refuses a second writer of a seq).
CREATE TABLE audit_events (
    seq     BIGINT NOT NULL CHECK (seq >= 0),
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL,
    CONSTRAINT audit_events_pk PRIMARY KEY (seq)
);

-- Token buckets of the rate limits, shared by every server process: the bucket's milli-tokens
-- (exact integers, no floating point) as of `updated_ms` (Unix milliseconds).
CREATE TABLE rate_buckets (
    bucket       TEXT NOT NULL,
    milli_tokens BIGINT NOT NULL CHECK (milli_tokens >= 0),
    updated_ms   BIGINT NOT NULL CHECK (updated_ms >= 0),
    CONSTRAINT rate_buckets_pk PRIMARY KEY (bucket)
);
