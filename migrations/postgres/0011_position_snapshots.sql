-- A position's last Data Hub snapshot in its own table, as in the SQLite schema: a position
-- update (many a second under load) no longer carries the snapshot into each new row version.

CREATE TABLE position_snapshots (
    position_id  BIGINT PRIMARY KEY,
    snapshot     JSONB NOT NULL,
    taken_at     BIGINT NOT NULL
);

INSERT INTO position_snapshots (position_id, snapshot, taken_at)
SELECT position_id, last_snapshot, COALESCE(snapshot_at, updated_at)
FROM positions WHERE last_snapshot IS NOT NULL;

ALTER TABLE positions DROP COLUMN last_snapshot, DROP COLUMN snapshot_at;
