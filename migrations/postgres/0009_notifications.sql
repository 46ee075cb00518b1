-- The notification outbox on PostgreSQL: the same tables and meanings as
-- migrations/sqlite/0009 (JSON as JSONB). Numbered as the SQLite migration it mirrors.
--
-- A notification is a row written in the same transaction as its cause, so a crash never
-- loses one and never invents one; each configured sink has a cursor and takes the rows after
-- it in order, at least once. Delivered rows are pruned by age, like the dedupe set.
--
-- A sink's cursor passes every seq up to the one it took, so seqs must become visible in the
-- order they are given out: every write that queues a notification is serialized with the
-- others (the writer lock within a process, the lease row across processes: a leader's write
-- holds it FOR SHARE, the one write of a standby — its `standby` notification — FOR UPDATE).

-- One row per notification. `seq` is the delivery order and, with the database's instance id,
-- the stable id a receiver dedupes on: an identity, so a seq is never given out twice, even
-- after the newest rows were pruned.
CREATE TABLE notifications (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT NOT NULL,
    -- 0 info, 1 warning, 2 critical.
    severity    INTEGER NOT NULL CHECK (severity IN (0, 1, 2)),
    created_at  BIGINT NOT NULL,
    text        TEXT NOT NULL,
    data        JSONB NOT NULL,
    -- Bumped when a "notifications dropped" row that no sink has taken yet absorbs more drops;
    -- a delivery of an older revision does not move a sink past it.
    revision    BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX notifications_by_age ON notifications (created_at);

-- The configured sinks, registered at the start of every term (a sink no longer configured is
-- removed). `delivered_seq`: every notification up to it was delivered to the sink, or failed
-- for good there (4xx). A sink added later starts after the newest notification it found.
CREATE TABLE notification_sinks (
    sink           TEXT PRIMARY KEY,
    label          TEXT NOT NULL,
    min_severity   INTEGER NOT NULL CHECK (min_severity IN (0, 1, 2)),
    -- JSON array of the notification kinds the sink takes; NULL: every kind.
    kinds          JSONB CHECK (kinds IS NULL OR jsonb_typeof(kinds) = 'array'),
    delivered_seq  BIGINT NOT NULL,
    delivered_at   BIGINT
);

-- Deliveries a sink refused for good (4xx): logged, counted, and kept here for `state`.
CREATE TABLE notification_failures (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink       TEXT NOT NULL,
    label      TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    status     BIGINT,
    reason     TEXT NOT NULL,
    failed_at  BIGINT NOT NULL
);

-- The outbox's bound (`notify.max_pending`, written at the start of every term) and how many
-- notifications it ever dropped to hold it.
CREATE TABLE notification_outbox (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    max_pending  BIGINT NOT NULL CHECK (max_pending >= 2),
    dropped      BIGINT NOT NULL DEFAULT 0 CHECK (dropped >= 0)
);

INSERT INTO notification_outbox (id, max_pending) VALUES (1, 10000);
