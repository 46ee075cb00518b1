-- Workflows (signal → prepare → execute), signal instances, and the database's identity.

-- The identity of this database file. It is part of every idempotency key the daemon derives,
-- so a fresh database never reuses a key an earlier database already sent (the server would
-- answer Conflict, or worse, return the earlier request's outcome).
CREATE TABLE store_meta (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id  TEXT NOT NULL
) STRICT;

INSERT INTO store_meta (id, instance_id) VALUES (1, lower(hex(randomblob(5))));

-- A signal instance is one run of On: the key of the event that turned the signal On.
-- Repeated On events keep it; On after Off starts a new instance. One workflow per instance.
ALTER TABLE signals ADD COLUMN instance TEXT NOT NULL DEFAULT '';
-- The adjustment condition the signal carries (also part of its key).
ALTER TABLE signals ADD COLUMN condition TEXT;

-- One row per workflow: a small state machine, resumed after any restart.
CREATE TABLE workflows (
    id               INTEGER PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    -- What may only have one active workflow: entry:<strategy>:<account> or position:<id>.
    scope            TEXT NOT NULL,
    signal_key       TEXT NOT NULL,
    signal_instance  TEXT NOT NULL,
    strategy_id      INTEGER NOT NULL,
    account          TEXT,
    position_id      INTEGER,
    condition        TEXT,
    state            TEXT NOT NULL
                     CHECK (state IN ('requested', 'preparing', 'prepared', 'executing',
                                      'done', 'failed', 'cancelled', 'observed')),
    job_id           TEXT,
    plan             TEXT CHECK (plan IS NULL OR json_valid(plan)),
    groups_done      TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(groups_done)),
    reason           TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE UNIQUE INDEX workflows_one_per_signal_instance ON workflows (signal_key, signal_instance);
CREATE UNIQUE INDEX workflows_one_active_per_scope ON workflows (scope)
    WHERE state IN ('requested', 'preparing', 'prepared', 'executing');
CREATE INDEX workflows_by_state ON workflows (state);
