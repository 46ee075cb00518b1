-- Holes in the event history: EventSeqIds the server no longer had when the daemon asked for
-- them (a cursor older than the server's retention), what was done about each (a resync from
-- the Control Hub, or a stop), and what the resync changed.
CREATE TABLE history_gaps (
    id           INTEGER PRIMARY KEY,
    from_seq     INTEGER NOT NULL,
    to_seq       INTEGER NOT NULL CHECK (to_seq >= from_seq),
    form         TEXT NOT NULL CHECK (form IN ('page', 'refused', 'oldest')),
    detected_at  INTEGER NOT NULL,
    resolution   TEXT NOT NULL CHECK (resolution IN ('resynced', 'stopped')),
    detail       TEXT CHECK (detail IS NULL OR json_valid(detail))
) STRICT;
