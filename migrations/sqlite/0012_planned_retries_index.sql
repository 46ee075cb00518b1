-- The workflow runner asks for the planned retries (final workflows with a `retry_at`) at every
-- pass: at each signal, each job or order update of a workflow, and once a second. Without an
-- index that was a scan of every workflow ever opened, each row about a page (its plan), read
-- again from the file after every commit (a reader's page cache does not survive a write): a
-- cost that grew with the daemon's history, on the way from a signal to its first call.

CREATE INDEX workflows_with_retry_planned ON workflows (id) WHERE retry_at IS NOT NULL;
