-- The notification outbox. A notification is a row written in the same transaction as its
-- cause (a workflow finishing, a quarantined event, a settled duplicate, …), so a crash never
-- loses one and never invents one; each configured sink has a cursor and takes the rows after
-- it in order, at least once. Delivered rows are pruned by age, like the dedupe set.

-- One row per notification. `seq` is the delivery order and, with the database's instance id,
-- the stable id a receiver dedupes on: AUTOINCREMENT so a seq is never given out twice, even
-- after the newest rows were pruned.
CREATE TABLE notifications (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    -- 0 info, 1 warning, 2 critical.
    severity    INTEGER NOT NULL CHECK (severity IN (0, 1, 2)),
    created_at  INTEGER NOT NULL,
    text        TEXT NOT NULL,
    data        TEXT NOT NULL CHECK (json_valid(data)),
    -- Bumped when a "notifications dropped" row that no sink has taken yet absorbs more drops;
    -- a delivery of an older revision does not move a sink past it.
    revision    INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX notifications_by_age ON notifications (created_at);

-- The configured sinks, registered at every start (a sink no longer configured is removed).
-- `delivered_seq`: every notification up to it was delivered to the sink, or failed for good
-- there (4xx). A sink added later starts after the newest notification it found.
CREATE TABLE notification_sinks (
    sink           TEXT PRIMARY KEY,
    label          TEXT NOT NULL,
    min_severity   INTEGER NOT NULL CHECK (min_severity IN (0, 1, 2)),
    -- JSON array of the notification kinds the sink takes; NULL: every kind.
    kinds          TEXT CHECK (kinds IS NULL OR json_valid(kinds)),
    delivered_seq  INTEGER NOT NULL,
    delivered_at   INTEGER
) STRICT;

-- Deliveries a sink refused for good (4xx): logged, counted, and kept here for `state`.
CREATE TABLE notification_failures (
    id         INTEGER PRIMARY KEY,
    sink       TEXT NOT NULL,
    label      TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    status     INTEGER,
    reason     TEXT NOT NULL,
    failed_at  INTEGER NOT NULL
) STRICT;

-- The outbox's bound (`notify.max_pending`, written at every start) and how many
-- notifications it ever dropped to hold it.
CREATE TABLE notification_outbox (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    max_pending  INTEGER NOT NULL CHECK (max_pending >= 2),
    dropped      INTEGER NOT NULL DEFAULT 0 CHECK (dropped >= 0)
) STRICT;

INSERT INTO notification_outbox (id, max_pending) VALUES (1, 10000);
