-- hashguard store schema, version 8: the reviewers' web UI (issue 16). Staff accounts and
-- their server-side sessions, the reviewers' decisions, reveals of visual derivatives, the
-- reports confirmed cases produce, the server-side allow-list of confirmed mistakes, and the
-- hash chain over the audit events.
--
-- Same portable subset as before: TEXT and BIGINT columns, natural keys, no auto-increment.
-- Times are Unix seconds. Flags are 0/1 BIGINTs.

-- A member of staff. `password` is an argon2id PHC string (salt and parameters inside); the
-- password itself is never stored. `failed_logins` counts failures since the last success;
-- at the deployment's limit `locked_until` is set and no login succeeds before it.
-- `blur_level` (1 light .. 3 strong), `greyscale` and `daily_reveals` are the reviewer's
-- wellness settings: how images are shown to them and how many they may reveal per day.
CREATE TABLE staff (
    id            TEXT NOT NULL,
    username      TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('reviewer', 'senior_reviewer', 'auditor', 'admin')),
    password      TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT,
    failed_logins BIGINT NOT NULL DEFAULT 0 CHECK (failed_logins >= 0),
    locked_until  BIGINT,
    blur_level    BIGINT NOT NULL DEFAULT 2 CHECK (blur_level BETWEEN 1 AND 3),
    greyscale     BIGINT NOT NULL DEFAULT 1 CHECK (greyscale IN (0, 1)),
    daily_reveals BIGINT NOT NULL DEFAULT 40 CHECK (daily_reveals >= 0),
    CONSTRAINT staff_pk PRIMARY KEY (id),
    CONSTRAINT staff_username UNIQUE (username)
);

-- A browser session of the review UI, kept only as the SHA-256 of its id (a copy of the
-- database lets nobody in). `staff` is NULL before login (the login form's own session, which
-- carries its CSRF token); a login deletes that row and creates a new one, so the id a browser
-- had before logging in is never valid after. `csrf` is the session's synchronizer token.
CREATE TABLE staff_sessions (
    id_hash    TEXT NOT NULL,
    staff      TEXT REFERENCES staff (id),
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT staff_sessions_pk PRIMARY KEY (id_hash)
);
CREATE INDEX staff_sessions_staff ON staff_sessions (staff);
CREATE INDEX staff_sessions_expiry ON staff_sessions (expires_at);

-- One reviewer's decision on one case. The primary key is (case, staff): the same person can
-- never decide a case twice, so never counts twice. `stage` says which decision it was:
-- 'independent' (one of the two), 'senior' (after a disagreement) or 'appeal'.
CREATE TABLE review_decisions (
    case_id        TEXT NOT NULL REFERENCES cases (id),
    staff          TEXT NOT NULL REFERENCES staff (id),
    stage          TEXT NOT NULL CHECK (stage IN ('independent', 'senior', 'appeal')),
    decision       TEXT NOT NULL CHECK (decision IN ('confirm', 'reject')),
    classification TEXT CHECK (classification IN ('A1', 'A2', 'B1', 'B2')),
    note           TEXT NOT NULL,
    decided_at     BIGINT NOT NULL,
    CONSTRAINT review_decisions_pk PRIMARY KEY (case_id, staff)
);

-- Where each case stands in review. `outcome` is set once the case is decided ('confirmed' or
-- 'rejected'); `needs_senior` when the two independent decisions disagreed.
CREATE TABLE review_outcomes (
    case_id      TEXT NOT NULL REFERENCES cases (id),
    outcome      TEXT CHECK (outcome IN ('confirmed', 'rejected')),
    needs_senior BIGINT NOT NULL DEFAULT 0 CHECK (needs_senior IN (0, 1)),
    decided_at   BIGINT,
    CONSTRAINT review_outcomes_pk PRIMARY KEY (case_id)
);

-- A reveal: one reviewer asked to see one item of a case unblurred, with a reason. The item is
-- shown unblurred to that reviewer until `expires_at`.
CREATE TABLE review_reveals (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    item       BIGINT NOT NULL CHECK (item >= 0),
    staff      TEXT NOT NULL REFERENCES staff (id),
    reason     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT review_reveals_pk PRIMARY KEY (case_id, item, staff, at)
);
CREATE INDEX review_reveals_staff ON review_reveals (staff, at);

-- The report a confirmed case produces, as generated (JSON and XML), and when it was first
-- exported. Its material is deleted `retention` seconds after the export (`purged_at`).
CREATE TABLE review_reports (
    case_id     TEXT NOT NULL REFERENCES cases (id),
    created_at  BIGINT NOT NULL,
    json        TEXT NOT NULL,
    xml         TEXT NOT NULL,
    exported_at BIGINT,
    purged_at   BIGINT,
    CONSTRAINT review_reports_pk PRIMARY KEY (case_id)
);

-- The server-side allow-list: a confirmed mistake, remembered by its full PDQ hash (64 hex
-- digits) and, once it exists, its second hash. Consulted only by the automatic check; never
-- sent to clients.
CREATE TABLE allow_list (
    pdq         TEXT NOT NULL,
    second_hash TEXT,
    case_id     TEXT NOT NULL REFERENCES cases (id),
    added_by    TEXT NOT NULL REFERENCES staff (id),
    added_at    BIGINT NOT NULL,
    CONSTRAINT allow_list_pk PRIMARY KEY (pdq)
);

-- The visual derivative of an item whose sender consented to its check and that the check
-- kept blocked: the only way reviewers can see it, since the keys the sender revealed are not
-- kept. Lowercase hex of the greyscale thumbnail the sender's client made. Deleted with the
-- case's material (release, or retention after a report's export).
CREATE TABLE review_material (
    case_id   TEXT NOT NULL REFERENCES cases (id),
    item      BIGINT NOT NULL CHECK (item >= 0),
    pdq       TEXT NOT NULL,
    thumbnail TEXT NOT NULL,
    CONSTRAINT review_material_pk PRIMARY KEY (case_id, item)
);

-- The audit events become a hash chain: `hash` = SHA-256 over the previous event's hash and
-- this event's fields (see the store's `audit` module). Events written before this version
-- get theirs at the next append. `audit_head` holds the last event's seq and hash, so a
-- deleted last event is detected too, and its one row serialises appenders on PostgreSQL.
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE TABLE audit_head (
    id   BIGINT NOT NULL CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL,
    CONSTRAINT audit_head_pk PRIMARY KEY (id)
);
