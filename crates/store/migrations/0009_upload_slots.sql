-- hashguard store schema, version 9: upload slots of the two-phase upload (issue 13 item 7).
--
-- A client first sends an attachment's vouchers with the SHA-256 and length of its ciphertext;
-- when the service does not hold it, it answers with a slot, and the ciphertext's bytes go to
-- the slot afterwards. The slot row is bookkeeping only, exactly what the attachment's own row
-- will keep (G1): random ids, the owning account, the declared SHA-256 and length, and times.
-- Nothing derived from a voucher is kept here; under `silent` the vouchers wait in the data
-- folder's pending file (as for the one-request upload) and never in this table.
--
-- `attachment` is the id the attachment will have once the bytes arrive and match (chosen at
-- the slot's creation, so a pending opening under `silent` can name it); unique, so one
-- attachment never has two slots. The row is deleted in the transaction that inserts the
-- attachment's row, or when it expires (`expires_at`, Unix seconds). Same portable subset as
-- before.
CREATE TABLE upload_slots (
    id         TEXT NOT NULL,
    account    TEXT NOT NULL REFERENCES accounts (id),
    attachment TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    length     BIGINT NOT NULL CHECK (length > 0),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    CONSTRAINT upload_slots_pk PRIMARY KEY (id),
    CONSTRAINT upload_slots_attachment UNIQUE (attachment)
);
-- The sweep reads expired slots, oldest first.
CREATE INDEX upload_slots_expiry ON upload_slots (expires_at);
