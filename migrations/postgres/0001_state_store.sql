-- State store of mesolive-supervisor on PostgreSQL: the same tables and meanings as the SQLite
-- backend after its migrations 0001-0005 (see migrations/sqlite/), plus the leadership lease.
--
-- Conventions, as in SQLite: every instant is BIGINT unix milliseconds (UTC); every decimal is
-- TEXT so it round-trips exactly; JSON is JSONB. Enum-like columns carry a CHECK so a bad write
-- fails loudly. The tables live in database.schema (the daemon's search_path).

-- The identity of this database: part of every idempotency key the daemon derives.
CREATE TABLE store_meta (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    instance_id  TEXT NOT NULL
);

INSERT INTO store_meta (id, instance_id)
VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 10));

-- The leadership lease, one row per ha.group. epoch is the fencing token: it grows with every
-- acquisition, and every write transaction checks it. Instants come from the server's clock.
CREATE TABLE lease (
    grp          TEXT PRIMARY KEY,
    holder       TEXT,
    epoch        BIGINT NOT NULL CHECK (epoch >= 1),
    acquired_at  BIGINT NOT NULL,
    renewed_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- The last processed EventSeqId.
CREATE TABLE event_cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq_id      BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

-- Dedupe set, append-ordered; looked up through the daemon's in-memory index.
CREATE TABLE processed_events (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key     TEXT NOT NULL,
    seq_id        BIGINT,
    target        TEXT NOT NULL,
    processed_at  BIGINT NOT NULL
);

CREATE INDEX processed_events_by_age ON processed_events (processed_at);

-- Events applied per hub target, bumped in the same transaction as the effect.
CREATE TABLE event_stats (
    target   TEXT PRIMARY KEY,
    applied  BIGINT NOT NULL CHECK (applied >= 0)
);

CREATE TABLE quarantined_events (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key       TEXT NOT NULL,
    seq_id          BIGINT,
    target          TEXT NOT NULL,
    raw             TEXT NOT NULL,
    error           TEXT NOT NULL,
    quarantined_at  BIGINT NOT NULL
);

-- Every call that changes the world, committed before it is sent.
CREATE TABLE intents (
    idempotency_key  TEXT PRIMARY KEY,
    operation        TEXT NOT NULL,
    workflow_id      TEXT,
    args             JSONB NOT NULL,
    state            TEXT NOT NULL
                     CHECK (state IN ('pending', 'sent', 'completed', 'failed', 'unknown', 'abandoned')),
    outcome          JSONB,
    attempts         BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX intents_by_state ON intents (state);

CREATE TABLE prepare_jobs (
    job_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    intent_key   TEXT REFERENCES intents (idempotency_key),
    strategy_id  BIGINT NOT NULL,
    position_id  BIGINT,
    account      TEXT,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    result       JSONB,
    error        TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX prepare_jobs_by_status ON prepare_jobs (status);

CREATE TABLE positions (
    position_id    BIGINT PRIMARY KEY,
    strategy_id    BIGINT NOT NULL,
    account        TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    last_status    TEXT,
    realized_pnl   TEXT,
    monitored      BOOLEAN NOT NULL,
    last_snapshot  JSONB,
    snapshot_at    BIGINT,
    updated_at     BIGINT NOT NULL
);

CREATE INDEX positions_by_state ON positions (state, monitored);

-- No foreign key to positions on purpose (see the SQLite schema).
CREATE TABLE legs (
    leg_id       BIGINT PRIMARY KEY,
    position_id  BIGINT NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    qty          TEXT,
    updated_at   BIGINT NOT NULL
);

CREATE INDEX legs_by_position ON legs (position_id);

CREATE TABLE orders (
    order_id        BIGINT PRIMARY KEY,
    intent_key      TEXT REFERENCES intents (idempotency_key),
    exec_plan_id    BIGINT,
    leg_group_id    BIGINT,
    account         TEXT,
    strategy_id     BIGINT NOT NULL,
    state           TEXT,
    filled_qty      TEXT,
    avg_fill_price  TEXT,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX orders_by_intent ON orders (intent_key) WHERE intent_key IS NOT NULL;

CREATE TABLE signals (
    signal_key    TEXT PRIMARY KEY,
    kind          TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    state         TEXT NOT NULL CHECK (state IN ('On', 'Off')),
    strategy_id   BIGINT NOT NULL,
    position_id   BIGINT,
    account       TEXT,
    payload       JSONB NOT NULL,
    updated_at    BIGINT NOT NULL,
    instance      TEXT NOT NULL DEFAULT '',
    condition     TEXT,
    event_key     TEXT,
    event_seq_id  BIGINT,
    event_time    BIGINT
);

CREATE TABLE workflows (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind             TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    scope            TEXT NOT NULL,
    signal_key       TEXT NOT NULL,
    signal_instance  TEXT NOT NULL,
    strategy_id      BIGINT NOT NULL,
    account          TEXT,
    position_id      BIGINT,
    condition        TEXT,
    state            TEXT NOT NULL
                     CHECK (state IN ('requested', 'preparing', 'prepared', 'executing',
                                      'done', 'failed', 'cancelled', 'observed')),
    job_id           TEXT,
    plan             JSONB,
    groups_done      JSONB NOT NULL DEFAULT '[]',
    reason           TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE UNIQUE INDEX workflows_one_per_signal_instance ON workflows (signal_key, signal_instance);
CREATE UNIQUE INDEX workflows_one_active_per_scope ON workflows (scope)
    WHERE state IN ('requested', 'preparing', 'prepared', 'executing');
CREATE INDEX workflows_by_state ON workflows (state);

CREATE TABLE history_gaps (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    from_seq     BIGINT NOT NULL,
    to_seq       BIGINT NOT NULL CHECK (to_seq >= from_seq),
    form         TEXT NOT NULL CHECK (form IN ('page', 'refused', 'oldest')),
    detected_at  BIGINT NOT NULL,
    resolution   TEXT NOT NULL CHECK (resolution IN ('resynced', 'stopped')),
    detail       JSONB
);
