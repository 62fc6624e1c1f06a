-- hashguard store schema, version 5: crafted-collision campaigns (protocol.md R/E12 step 6).
--
-- Anyone who holds one listed image can craft benign images with its key. Each such image is
-- held, and released by the automatic check its sender consents to. One crafted image sent
-- from many accounts shows up as many releases of one PDQ hash; this is how it is seen.
--
-- Privacy: the PDQ hash of a released item is known to the server only because its sender
-- consented to the check of that one item. It is kept here for a bounded time (the service
-- deletes rows older than its retention, 30 days by default; the consent offer says so),
-- together with the case and account it came from, and nothing else. No column may be added
-- for anything derived from an item that was not checked by consent.

-- A consented check that released its item: the item's PDQ hash (64 hex digits).
CREATE TABLE released_checks (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    account     TEXT NOT NULL REFERENCES accounts (id),
    pdq         TEXT NOT NULL,
    released_at BIGINT NOT NULL,
    CONSTRAINT released_checks_pk PRIMARY KEY (case_id)
);
-- The window's read and the retention's delete go by time.
CREATE INDEX released_checks_time ON released_checks (released_at);

-- A flagged campaign: releases from at least the configured number of distinct accounts, within
-- the configured window, whose PDQ hashes lie within the match distance of `pdq` (the release
-- that raised the flag). `accounts` is the largest such count seen so far.
CREATE TABLE campaigns (
    id         TEXT NOT NULL,
    pdq        TEXT NOT NULL,
    accounts   BIGINT NOT NULL CHECK (accounts >= 0),
    first_seen BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    CONSTRAINT campaigns_pk PRIMARY KEY (id)
);
CREATE INDEX campaigns_last_seen ON campaigns (last_seen);
