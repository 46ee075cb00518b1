-- Operator control on PostgreSQL: the same tables and meanings as migrations/sqlite/0007 (the
-- trading state, the operator actions, the risk switches already made, and the realized PnL
-- marks the daily-loss rule reads). Numbered as the SQLite migration it mirrors.

-- The trading state (active, reduce_only, halted). At most one row; absent until the first
-- start writes automation.initial_state (or `ctl` writes a state with no daemon running).
CREATE TABLE trading_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    state       TEXT NOT NULL CHECK (state IN ('active', 'reduce_only', 'halted')),
    updated_at  BIGINT NOT NULL
);

-- Every operator action, oldest first: a trading state change (from, to), a workflow
-- cancelled, a configuration reload applied. `source` says who.
CREATE TABLE operator_actions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           BIGINT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('trading_state', 'cancel_workflow', 'reload')),
    from_state   TEXT CHECK (from_state IN ('active', 'reduce_only', 'halted')),
    to_state     TEXT CHECK (to_state IN ('active', 'reduce_only', 'halted')),
    workflow_id  BIGINT,
    reason       TEXT NOT NULL,
    source       TEXT NOT NULL CHECK (source IN ('ctl', 'risk', 'config', 'sighup'))
);

-- Trading-state switches made by a risk rule, one per rule, account and trading day.
CREATE TABLE risk_switches (
    rule         TEXT NOT NULL,
    account      TEXT NOT NULL,
    trading_day  TEXT NOT NULL,
    at           BIGINT NOT NULL,
    PRIMARY KEY (rule, account, trading_day)
);

-- Realized PnL of a position each time a position update changed it (decimal as TEXT, `at` the
-- commit time).
CREATE TABLE realized_pnl_marks (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    position_id   BIGINT NOT NULL,
    account       TEXT NOT NULL,
    realized_pnl  TEXT NOT NULL,
    at            BIGINT NOT NULL
);

CREATE INDEX realized_pnl_marks_by_position ON realized_pnl_marks (position_id, at);
CREATE INDEX realized_pnl_marks_by_time ON realized_pnl_marks (at);

-- The marks are written by the positions table itself, in the transaction that applies the
-- position update, as in SQLite. The function resolves its table in the schema it was created
-- in, whatever the session's search_path.
CREATE FUNCTION positions_realized_pnl_mark() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER positions_realized_pnl_inserted AFTER INSERT ON positions
FOR EACH ROW WHEN (NEW.realized_pnl IS NOT NULL)
EXECUTE FUNCTION positions_realized_pnl_mark();

CREATE TRIGGER positions_realized_pnl_changed AFTER UPDATE OF realized_pnl ON positions
FOR EACH ROW WHEN (NEW.realized_pnl IS NOT NULL AND NEW.realized_pnl IS DISTINCT FROM OLD.realized_pnl)
EXECUTE FUNCTION positions_realized_pnl_mark();
