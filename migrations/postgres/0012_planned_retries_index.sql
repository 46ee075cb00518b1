-- The planned retries (final workflows with a `retry_at`), asked for at every pass of the
-- workflow runner, without scanning every workflow ever opened (see the SQLite migration).

CREATE INDEX workflows_with_retry_planned ON workflows (id) WHERE retry_at IS NOT NULL;
