-- hashguard store schema, version 3: an entry's collaboration, and entries merged from lines
-- that repeat a value.
--
-- 1. `entries.collab` holds the CSV format's `collab` column of the entry, which until now was
--    dropped on import (and the bank's organisation written in its place on export). Rows of
--    earlier versions have NULL: their list's collab was not kept, and nothing can recover it.
-- 2. No column changes type for merged entries. A list line repeating a value is merged into one
--    entry that keeps what every line said: several source ids (PDQ CLI file names) and several
--    labels (CSV rows: collab, category, tags). None of those texts can hold a control
--    character (hashguard-hashlist's `Text` and `Tag` refuse them), so the store keeps them in
--    the existing text columns separated by a newline: `source_id` holds the names, and
--    `collab`, `category` and `tags` hold one line per label (an empty line where a label has
--    no collab or category). A row with one source id and one label, and every row of an
--    earlier version, reads as it did.
--
-- ADD COLUMN of a nullable column without a default is the same statement in SQLite and
-- PostgreSQL and rewrites no row.

ALTER TABLE entries ADD COLUMN collab TEXT;
