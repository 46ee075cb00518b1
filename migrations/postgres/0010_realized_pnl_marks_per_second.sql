-- A position's realized PnL marks, one per second at most, as in SQLite (see its migration of
-- the same name): `at` is the whole second of the commit time, and a later change within that
-- second replaces the second's mark in place. For an instant on a whole second (a trading
-- day's start) the daily-loss rule's answers are the same as with one mark per change.

DROP INDEX realized_pnl_marks_by_position;

-- The marks already kept: the last of each second, at the second.
DELETE FROM realized_pnl_marks
WHERE id NOT IN (SELECT MAX(id) FROM realized_pnl_marks GROUP BY position_id, at - at % 1000);
UPDATE realized_pnl_marks SET at = at - at % 1000;

CREATE UNIQUE INDEX realized_pnl_marks_by_position ON realized_pnl_marks (position_id, at);

CREATE OR REPLACE FUNCTION positions_realized_pnl_mark() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
AS $$
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at - NEW.updated_at % 1000)
    ON CONFLICT (position_id, at) DO UPDATE SET
        account = EXCLUDED.account,
        realized_pnl = EXCLUDED.realized_pnl;
    RETURN NULL;
END;
$$;
