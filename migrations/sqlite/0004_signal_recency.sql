-- Which event each signal's stored state comes from, so that a re-asserted state (an
-- on-connect push, or an event at or below the cursor whose key the dedupe set no longer or
-- never knew) replaces it only when it is newer: by EventSeqId when both carry one, else by
-- EventTime (unix milliseconds). Rows stored before this migration know neither: any
-- re-assertion replaces them, as before.
ALTER TABLE signals ADD COLUMN event_key TEXT;
ALTER TABLE signals ADD COLUMN event_seq_id INTEGER;
ALTER TABLE signals ADD COLUMN event_time INTEGER;
