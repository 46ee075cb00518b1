-- A position's realized PnL marks, one per second at most: a mark's `at` becomes the whole
-- second its commit time falls in, and a later change within that second replaces the second's
-- mark in place. The daily-loss rule asks, per position, for the last mark since an instant and
-- the last one before it; for an instant on a whole second (a trading day starts at a local
-- midnight, and every zone's offset is whole seconds) both answers are the same as with one
-- mark per change. A position whose PnL moves with every update wrote one mark per update,
-- each an insert into the (position_id, at) index at that position's own place: a batch of
-- updates dirtied a page per position, and the table grew without bound at the update rate.

DROP TRIGGER positions_realized_pnl_inserted;
DROP TRIGGER positions_realized_pnl_changed;
DROP INDEX realized_pnl_marks_by_position;

-- The marks already kept: the last of each second, at the second.
DELETE FROM realized_pnl_marks
WHERE id NOT IN (SELECT MAX(id) FROM realized_pnl_marks GROUP BY position_id, at - at % 1000);
UPDATE realized_pnl_marks SET at = at - at % 1000;

CREATE UNIQUE INDEX realized_pnl_marks_by_position ON realized_pnl_marks (position_id, at);

CREATE TRIGGER positions_realized_pnl_inserted AFTER INSERT ON positions
WHEN NEW.realized_pnl IS NOT NULL
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at - NEW.updated_at % 1000)
    ON CONFLICT (position_id, at) DO UPDATE SET
        account = excluded.account,
        realized_pnl = excluded.realized_pnl;
END;

CREATE TRIGGER positions_realized_pnl_changed AFTER UPDATE OF realized_pnl ON positions
WHEN NEW.realized_pnl IS NOT NULL AND NEW.realized_pnl IS NOT OLD.realized_pnl
BEGIN
    INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
    VALUES (NEW.position_id, NEW.account, NEW.realized_pnl, NEW.updated_at - NEW.updated_at % 1000)
    ON CONFLICT (position_id, at) DO UPDATE SET
        account = excluded.account,
        realized_pnl = excluded.realized_pnl;
END;
