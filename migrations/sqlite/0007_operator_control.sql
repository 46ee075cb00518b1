-- Operator control: the trading state, what operators and risk rules did, the risk switches
-- already made, and the realized PnL marks the daily-loss rule reads.

-- The trading state (active, reduce_only, halted). At most one row; absent until the first
-- start writes automation.initial_state (or `ctl` writes a state with the daemon stopped).
CREATE TABLE trading_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    state       TEXT NOT NULL CHECK (state IN ('active', 'reduce_only', 'halted')),
    updated_at  INTEGER NOT NULL
) STRICT;

-- Every operator action, oldest first: a trading state change (from, to), a workflow
-- cancelled, a configuration reload applied. `source` says who: the control command, a risk
-- rule, the configuration (automation.initial_state), or SIGHUP.
CREATE TABLE operator_actions (
    id           INTEGER PRIMARY KEY,
    at           INTEGER NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('trading_state', 'cancel_workflow', 'reload')),
    from_state   TEXT CHECK (from_state IS NULL OR from_state IN ('active', 'reduce_only', 'halted')),
    to_state     TEXT CHECK (to_state IS NULL OR to_state IN ('active', 'reduce_only', 'halted')),
    workflow_id  INTEGER,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('ctl', 'risk', 'config', 'sighup'))
) STRICT;

-- Trading-state switches made by a risk rule, one per rule, account and trading day
-- (YYYY-MM-DD in risk.day_timezone): a rule that fired does not fire again that day, so an
-- operator's resume is not undone by the next check or by a restart.
CREATE TABLE risk_switches (
    rule         TEXT NOT NULL,
    account      TEXT NOT NULL,
    trading_day  TEXT NOT NULL,
    at           INTEGER NOT NULL,
    PRIMARY KEY (rule, account, trading_day)
) STRICT, WITHOUT ROWID;

-- Realized PnL of a position each time a position update changed it (decimal as TEXT, `at` the
-- commit time). A trading day's realized PnL of an account is, per position, its last mark of
-- the day less its last mark before the day.
CREATE TABLE realized_pnl_marks (
    id            INTEGER PRIMARY KEY,
    position_id   INTEGER NOT NULL,
    account       TEXT NOT NULL,
    realized_pnl  TEXT NOT NULL,
    at            INTEGER NOT NULL
) STRICT;

CREATE INDEX realized_pnl_marks_by_position ON realized_pnl_marks (position_id, at);
CREATE INDEX realized_pnl_marks_by_time ON realized_pnl_marks (at);

-- The marks are written by the positions table itself, in the transaction that applies the
-- position update (events, listings, resyncs alike): no writer of positions can forget them.
-- A PostgreSQL port needs the same two triggers (or the same INSERT in its positions upsert).
CREATE TRIGGER positions_realized_pnl_inserted AFTER INSERT ON positions
WHEN NEW.realized_pnl IS NOT NULL
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at);
END;

CREATE TRIGGER positions_realized_pnl_changed AFTER UPDATE OF realized_pnl ON positions
WHEN NEW.realized_pnl IS NOT NULL AND NEW.realized_pnl IS NOT OLD.realized_pnl
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at);
END;
