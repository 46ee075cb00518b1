-- State store of mesolive-supervisor: everything that must survive a restart.
--
-- Conventions: every timestamp is INTEGER unix milliseconds (UTC); every decimal
-- (quantities, prices, PnL) is TEXT so it round-trips exactly; every JSON column is
-- TEXT checked with json_valid. Enum-like columns carry a CHECK so a bad write fails
-- loudly instead of leaving a value the daemon cannot read back.
-- Later migrations (workflows) add their own tables; nothing here needs to change for them.

-- The last processed EventSeqId. At most one row; absent until the first event or
-- until the first run initialises it from the server's latest sequence id.
CREATE TABLE event_cursor (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    seq_id      INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- Dedupe set: one row per event whose effect was committed. The key is the EventId,
-- or a content key for events that carry none (on-connect pushes).
-- Pruned by age (processed_at), never by count.
CREATE TABLE processed_events (
    event_key     TEXT PRIMARY KEY,
    seq_id        INTEGER,
    target        TEXT NOT NULL,
    processed_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX processed_events_by_age ON processed_events (processed_at);

-- How many events per hub target had their effect applied. Bumped in the same
-- transaction as the effect, so its total always equals the events applied.
CREATE TABLE event_stats (
    target   TEXT PRIMARY KEY,
    applied  INTEGER NOT NULL CHECK (applied >= 0)
) STRICT;

-- Events that could not be parsed: kept verbatim for an operator, never retried.
CREATE TABLE quarantined_events (
    id              INTEGER PRIMARY KEY,
    event_key       TEXT NOT NULL,
    seq_id          INTEGER,
    target          TEXT NOT NULL,
    raw             TEXT NOT NULL,
    error           TEXT NOT NULL,
    quarantined_at  INTEGER NOT NULL
) STRICT;

-- Every call that changes the world, committed before it is sent.
CREATE TABLE intents (
    idempotency_key  TEXT PRIMARY KEY,
    operation        TEXT NOT NULL,
    workflow_id      TEXT,
    args             TEXT NOT NULL CHECK (json_valid(args)),
    state            TEXT NOT NULL
                     CHECK (state IN ('pending', 'sent', 'completed', 'failed', 'unknown', 'abandoned')),
    outcome          TEXT CHECK (outcome IS NULL OR json_valid(outcome)),
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE INDEX intents_by_state ON intents (state);

-- Async prepare jobs (JobId lifecycle). Rows also come from completion events of
-- jobs this process did not record starting (then intent_key is NULL).
CREATE TABLE prepare_jobs (
    job_id       TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    intent_key   TEXT REFERENCES intents (idempotency_key),
    strategy_id  INTEGER NOT NULL,
    position_id  INTEGER,
    account      TEXT,
    status       TEXT NOT NULL
                 CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    result       TEXT CHECK (result IS NULL OR json_valid(result)),
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX prepare_jobs_by_status ON prepare_jobs (status);

-- Positions this daemon knows about and whether it monitors them.
CREATE TABLE positions (
    position_id    INTEGER PRIMARY KEY,
    strategy_id    INTEGER NOT NULL,
    account        TEXT NOT NULL,
    name           TEXT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('open', 'closed')),
    last_status    TEXT,
    realized_pnl   TEXT,
    monitored      INTEGER NOT NULL CHECK (monitored IN (0, 1)),
    last_snapshot  TEXT CHECK (last_snapshot IS NULL OR json_valid(last_snapshot)),
    snapshot_at    INTEGER,
    updated_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX positions_by_state ON positions (state, monitored);

-- Legs of positions. No foreign key to positions on purpose: a leg update may arrive
-- for a position this daemon never saw created (the cursor starts at the server's
-- latest on a first run), and refusing it would stall the event pump.
CREATE TABLE legs (
    leg_id       INTEGER PRIMARY KEY,
    position_id  INTEGER NOT NULL,
    name         TEXT NOT NULL,
    status       TEXT NOT NULL,
    qty          TEXT,
    updated_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX legs_by_position ON legs (position_id);

-- Live orders, linked to the intent that sent them when this daemon sent them.
-- state is NULL while only the link is known (no order update seen yet).
CREATE TABLE orders (
    order_id        INTEGER PRIMARY KEY,
    intent_key      TEXT REFERENCES intents (idempotency_key),
    exec_plan_id    INTEGER,
    leg_group_id    INTEGER,
    account         TEXT,
    strategy_id     INTEGER NOT NULL,
    state           TEXT,
    filled_qty      TEXT,
    avg_fill_price  TEXT,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX orders_by_intent ON orders (intent_key) WHERE intent_key IS NOT NULL;

-- Latest state of each level-style signal.
CREATE TABLE signals (
    signal_key   TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('entry', 'exit', 'adjustment')),
    state        TEXT NOT NULL CHECK (state IN ('On', 'Off')),
    strategy_id  INTEGER NOT NULL,
    position_id  INTEGER,
    account      TEXT,
    payload      TEXT NOT NULL CHECK (json_valid(payload)),
    updated_at   INTEGER NOT NULL
) STRICT;
