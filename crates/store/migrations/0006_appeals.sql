-- hashguard store schema, version 6: appeals, the route every intervention offers. A user
-- appeals one of their held items that the automatic check kept blocked; a reviewer who did
-- not decide the case decides the appeal (issue "Review"), and the user's client reads the
-- outcome from the case.

-- At most one appeal per case. `message` is what the user chose to write (at most 2,000
-- characters, checked by the service).
CREATE TABLE appeals (
    case_id    TEXT NOT NULL REFERENCES cases (id),
    account    TEXT NOT NULL REFERENCES accounts (id),
    message    TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('open', 'upheld', 'overturned')),
    created_at BIGINT NOT NULL,
    decided_at BIGINT,
    CONSTRAINT appeals_pk PRIMARY KEY (case_id)
);
-- Reviewers read the open ones, oldest first.
CREATE INDEX appeals_open ON appeals (state, created_at);
