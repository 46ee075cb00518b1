-- The dedupe set becomes an append-ordered log. Keyed by the EventId, every insert landed on a
-- random leaf of the B-tree (EventIds are random UUIDs), so a commit of N new events wrote about
-- N pages: half the cost of durable ingest. Appended by rowid, a commit writes a few pages at the
-- right edge. Lookups by key are served by an in-memory index of this table that the store
-- loads on first use (src/store/dedupe.rs); the table stays the truth, and it is reloaded
-- after any failed write.
CREATE TABLE processed_events_log (
    id            INTEGER PRIMARY KEY,
    event_key     TEXT NOT NULL,
    seq_id        INTEGER,
    target        TEXT NOT NULL,
    processed_at  INTEGER NOT NULL
) STRICT;

INSERT INTO processed_events_log (event_key, seq_id, target, processed_at)
SELECT event_key, seq_id, target, processed_at FROM processed_events ORDER BY processed_at;

DROP TABLE processed_events;
ALTER TABLE processed_events_log RENAME TO processed_events;

-- Pruned by age, never by count.
CREATE INDEX processed_events_by_age ON processed_events (processed_at);
