//! The `state` snapshot on PostgreSQL, read in one repeatable-read transaction.

use super::{
    Postgres, events, history, intents, jobs, lease, operator, outbox, positions, workflows,
};
use crate::store::summary::{ACTIONS_LISTED, QUARANTINE_LISTED, WORKFLOWS_LISTED};
use crate::store::{StoreError, StoreSummary, Timestamp};

/// [`crate::store::Store::summary`].
pub(in crate::store) async fn summary(db: &Postgres) -> Result<StoreSummary, StoreError> {
    let leases = lease::all(db).await?;
    let mut tx = db.reader().await?;
    sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .execute(&mut *tx)
        .await?;
    let cursor: Option<(i64, Timestamp)> =
        sqlx::query_as("SELECT seq_id, updated_at FROM event_cursor WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?;
    let counts = sqlx::query_as(
        "SELECT 'processed_events' AS \"table\", NULL::text AS state, COUNT(*) AS count
             FROM processed_events
         UNION ALL SELECT 'applied_events', target, applied FROM event_stats
         UNION ALL SELECT 'intents', state, COUNT(*) FROM intents GROUP BY state
         UNION ALL SELECT 'prepare_jobs', status, COUNT(*) FROM prepare_jobs GROUP BY status
         UNION ALL SELECT 'positions', state, COUNT(*) FROM positions GROUP BY state
         UNION ALL SELECT 'legs', NULL, COUNT(*) FROM legs
         UNION ALL SELECT 'orders', state, COUNT(*) FROM orders GROUP BY state
         UNION ALL SELECT 'signals', state, COUNT(*) FROM signals GROUP BY state
         UNION ALL SELECT 'workflows', state, COUNT(*) FROM workflows GROUP BY state
         UNION ALL SELECT 'quarantined_events', NULL, COUNT(*) FROM quarantined_events
         UNION ALL SELECT 'notifications', NULL, COUNT(*) FROM notifications",
    )
    .fetch_all(&mut *tx)
    .await?;
    let summary = StoreSummary {
        database: db.describe().to_owned(),
        cursor: cursor.map(|(seq, _)| seq),
        cursor_updated_at: cursor.map(|(_, at)| at),
        trading_state: operator::stored_state(&mut tx).await?,
        operator_actions: operator::latest_actions(&mut tx, ACTIONS_LISTED).await?,
        counts,
        leases,
        intents_in_flight: intents::in_flight(&mut tx).await?,
        prepare_jobs_in_flight: jobs::of_flight(&mut tx).await?,
        workflows: workflows::listed(&mut tx, WORKFLOWS_LISTED).await?,
        overdue_workflows: workflows::overdue(&mut tx, Timestamp::now()).await?,
        monitored_positions: positions::of_monitored(&mut tx).await?,
        quarantined_events: events::latest_quarantined(&mut tx, QUARANTINE_LISTED).await?,
        history_gaps: history::of_all(&mut tx).await?,
        notifications: outbox::summary(&mut tx).await?,
    };
    sqlx::query("COMMIT").execute(&mut *tx).await?;
    Ok(summary)
}
