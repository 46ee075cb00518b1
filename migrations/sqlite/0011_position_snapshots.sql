-- A position's last Data Hub snapshot in its own table. In the positions row it made the row
-- about a kilobyte, four rows to a page: every position update (a realized PnL change, many a
-- second under load) rewrote the snapshot with the row and dirtied a page per position, and
-- each commit wrote those pages to the WAL. Snapshots are written when a monitor resyncs, not
-- per update; the positions rows are now a tenth of the size.

CREATE TABLE position_snapshots (
    position_id  INTEGER PRIMARY KEY,
    snapshot     TEXT NOT NULL CHECK (json_valid(snapshot)),
    taken_at     INTEGER NOT NULL
) STRICT;

INSERT INTO position_snapshots (position_id, snapshot, taken_at)
SELECT position_id, last_snapshot, COALESCE(snapshot_at, updated_at)
FROM positions WHERE last_snapshot IS NOT NULL;

ALTER TABLE positions DROP COLUMN last_snapshot;
ALTER TABLE positions DROP COLUMN snapshot_at;
