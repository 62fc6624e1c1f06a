-- hashguard store schema, version 7: MLS delivery (issue 14), the service's part of the
-- reference messenger. The server never parses MLS: it keeps opaque ciphertexts (key
-- packages, commits, welcomes, group infos, application messages), who is in which group,
-- and per-device queues.
--
-- Same portable subset as before. MLS bytes are standard base64 TEXT, not hex as elsewhere:
-- a message of up to 256 KiB is copied into the queue of every recipient, and base64 takes
-- two thirds of hex's room. Times are Unix seconds.

-- Each device's two counters. `mls_queue_seq` is the last sequence number given to an entry
-- of its queue: an enqueuing transaction increments it with an UPDATE, which locks the
-- device's row until that transaction ends, so a device's entries commit in the order of
-- their numbers and a reader that sees seq S has seen every entry below S. (A global
-- auto-increment would not: PostgreSQL transactions commit out of id order, and an ack up to
-- S could delete an entry committed after the read.) Revoking a device updates the same row,
-- so a revocation and a delivery to that device are serialised. `mls_key_package_seq` numbers
-- the device's key packages the same way. Neither is ever reset, so numbers are never reused.
ALTER TABLE devices ADD COLUMN mls_queue_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN mls_key_package_seq BIGINT NOT NULL DEFAULT 0;

-- Key packages a device published for others to add it to groups; each is claimed (deleted)
-- exactly once.
CREATE TABLE mls_key_packages (
    device      TEXT NOT NULL REFERENCES devices (id),
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    key_package TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT mls_key_packages_pk PRIMARY KEY (device, seq)
);

-- A group: its id (the MLS group id the client chose, lowercase hex), its current epoch, which
-- only an accepted commit moves (compare-and-swap), and the group info the last commit
-- carried, if any.
CREATE TABLE mls_groups (
    id         TEXT NOT NULL,
    epoch      BIGINT NOT NULL CHECK (epoch >= 0),
    group_info TEXT,
    created_by TEXT NOT NULL REFERENCES devices (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CONSTRAINT mls_groups_pk PRIMARY KEY (id)
);

-- The devices in each group as of its current epoch: the server derives every message's
-- recipients from here, never from the sender's request. A revoked device keeps its row (it
-- is still in the MLS group until a commit removes it) but receives nothing.
CREATE TABLE mls_members (
    group_id TEXT NOT NULL REFERENCES mls_groups (id),
    device   TEXT NOT NULL REFERENCES devices (id),
    since    BIGINT NOT NULL CHECK (since >= 0),
    CONSTRAINT mls_members_pk PRIMARY KEY (group_id, device)
);
CREATE INDEX mls_members_device ON mls_members (device);

-- Each device's queue, in the order of `seq` (see `devices.mls_queue_seq`); an entry is
-- deleted when its device acknowledges it, or with the device's revocation. `epoch` is the
-- epoch the message belongs to: a commit's old epoch, a welcome's new one. `size` is the
-- length of the decoded body.
CREATE TABLE mls_queue (
    device      TEXT NOT NULL REFERENCES devices (id),
    seq         BIGINT NOT NULL CHECK (seq >= 1),
    kind        TEXT NOT NULL CHECK (kind IN ('commit', 'welcome', 'application')),
    group_id    TEXT NOT NULL REFERENCES mls_groups (id),
    epoch       BIGINT NOT NULL CHECK (epoch >= 0),
    sender      TEXT NOT NULL REFERENCES devices (id),
    body        TEXT NOT NULL,
    size        BIGINT NOT NULL CHECK (size >= 0),
    received_at BIGINT NOT NULL,
    CONSTRAINT mls_queue_pk PRIMARY KEY (device, seq)
);
