-- Workflow attempts and deadlines on PostgreSQL: the same columns and meanings as
-- migrations/sqlite/0006. Numbered as the SQLite migration it mirrors.
--
-- A failed exit (or adjustment, or entry when automation.entry_retry is on) whose signal is
-- still On is retried as a new workflow of the same signal instance: a new attempt, a new row,
-- so new intent keys. The failed attempt records when the next one may open (retry_at, after
-- a backoff) or, in its reason, why there is none.
ALTER TABLE workflows ADD COLUMN attempt BIGINT NOT NULL DEFAULT 1 CHECK (attempt >= 1);
-- When the next attempt of this signal instance may open (unix ms); NULL: none is planned.
ALTER TABLE workflows ADD COLUMN retry_at BIGINT;
-- When the current step of an active workflow must be done by (unix ms): a prepare job past
-- it is polled then cancelled, a live order past it is cancelled, anything else past it is
-- reported. NULL once final. Active rows from before this migration get one on their next step.
ALTER TABLE workflows ADD COLUMN deadline BIGINT;

DROP INDEX workflows_one_per_signal_instance;
CREATE UNIQUE INDEX workflows_one_per_attempt
    ON workflows (signal_key, signal_instance, attempt);
-- The oldest active workflows and the overdue ones, for the gauges and the state report.
CREATE INDEX workflows_by_deadline ON workflows (deadline) WHERE deadline IS NOT NULL;
