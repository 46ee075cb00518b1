//! Workflows on PostgreSQL (see `store/workflows.rs` for the rules).

use sqlx::PgConnection;

use super::{Postgres, Write};
use crate::notifications::notice;
use crate::store::workflows::{LATEST_ATTEMPTS, select_workflows, workflow_columns};
use crate::store::{
    LatestAttempt, NewWorkflow, StateCounts, StoreError, Timestamp, WorkflowChange, WorkflowRecord,
    WorkflowState,
};

/// [`crate::store::Store::create_workflow`].
pub(in crate::store) async fn create(
    db: &Postgres,
    new: &NewWorkflow,
) -> Result<Option<WorkflowRecord>, StoreError> {
    let now = Timestamp::now();
    let mut write = db.begin_write().await?;
    let created: Option<WorkflowRecord> = sqlx::query_as(concat!(
        "INSERT INTO workflows (kind, scope, signal_key, signal_instance, strategy_id, account,
                                position_id, condition, state, reason, attempt, deadline,
                                created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $13, $11, $11)
         ON CONFLICT DO NOTHING
         RETURNING ",
        workflow_columns!()
    ))
    .bind(new.kind.as_str())
    .bind(&new.scope)
    .bind(&new.signal_key)
    .bind(&new.signal_instance)
    .bind(new.strategy_id)
    .bind(&new.account)
    .bind(new.position_id)
    .bind(&new.condition)
    .bind(new.state)
    .bind(&new.reason)
    .bind(now)
    .bind(new.attempt)
    .bind(new.deadline)
    .fetch_optional(&mut *write.tx)
    .await?;
    if let Some(finished) = created.as_ref().and_then(notice::workflow_finished) {
        write.notify(&finished).await?;
    }
    write.commit().await?;
    Ok(created)
}

/// [`crate::store::Store::update_workflow`].
pub(in crate::store) async fn update(
    db: &Postgres,
    id: i64,
    change: &WorkflowChange,
) -> Result<WorkflowRecord, StoreError> {
    let mut write = db.begin_write().await?;
    let before: Option<WorkflowState> =
        sqlx::query_scalar("SELECT state FROM workflows WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *write.tx)
            .await?;
    // A final state is final, and a final workflow gets no next attempt (see
    // `store/workflows.rs`).
    let updated: Option<WorkflowRecord> = sqlx::query_as(concat!(
        "UPDATE workflows SET
             state = CASE WHEN state IN ('done', 'failed', 'cancelled', 'observed') THEN state
                          ELSE COALESCE($1, state) END,
             job_id = COALESCE($2, job_id),
             plan = COALESCE($3, plan),
             groups_done = CASE WHEN $4::bigint IS NULL THEN groups_done
                 ELSE (SELECT jsonb_agg(g ORDER BY g) FROM (
                     SELECT value::bigint AS g FROM jsonb_array_elements_text(groups_done)
                     UNION SELECT $4::bigint) AS done)
                 END,
             reason = COALESCE($5, reason),
             updated_at = $6,
             deadline = CASE
                 WHEN COALESCE($1, state) IN ('requested', 'preparing', 'prepared', 'executing')
                 THEN COALESCE($8, deadline) END,
             retry_at = CASE WHEN state IN ('done', 'failed', 'cancelled', 'observed')
                 THEN retry_at ELSE COALESCE($9, retry_at) END
         WHERE id = $7
         RETURNING ",
        workflow_columns!()
    ))
    .bind(change.state)
    .bind(&change.job_id)
    .bind(change.plan.as_ref().map(sqlx::types::Json))
    .bind(change.group_done)
    .bind(&change.reason)
    .bind(Timestamp::now())
    .bind(id)
    .bind(change.deadline)
    .bind(change.retry_at)
    .fetch_optional(&mut *write.tx)
    .await?;
    let finished = updated
        .as_ref()
        .filter(|_| before.is_some_and(WorkflowState::is_active))
        .and_then(|workflow| match change.refused_by {
            Some(rule) => Some(notice::risk_refused(workflow, rule)),
            None => notice::workflow_finished(workflow),
        });
    if let Some(finished) = &finished {
        write.notify(finished).await?;
    }
    write.commit().await?;
    updated.ok_or(StoreError::NotFound {
        what: "workflow",
        id: id.to_string(),
    })
}

/// [`crate::store::Store::workflow`].
pub(in crate::store) async fn get(
    db: &Postgres,
    id: i64,
) -> Result<Option<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!("WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::active_workflows`].
pub(in crate::store) async fn active(db: &Postgres) -> Result<Vec<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!(
        "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') ORDER BY id"
    ))
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::latest_attempts`].
pub(in crate::store) async fn latest_attempts(
    db: &Postgres,
) -> Result<Vec<LatestAttempt>, StoreError> {
    Ok(sqlx::query_as(LATEST_ATTEMPTS)
        .fetch_all(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::planned_retries`].
pub(in crate::store) async fn planned_retries(
    db: &Postgres,
) -> Result<Vec<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!(
        "WHERE retry_at IS NOT NULL
           AND state NOT IN ('requested', 'preparing', 'prepared', 'executing')
         ORDER BY id"
    ))
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::drop_retry`].
pub(in crate::store) async fn drop_retry(
    db: &Postgres,
    id: i64,
    why: &str,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    sqlx::query(
        "UPDATE workflows SET retry_at = NULL,
             reason = COALESCE(reason || '; ', '') || $1, updated_at = $2
         WHERE id = $3 AND retry_at IS NOT NULL",
    )
    .bind(why)
    .bind(Timestamp::now())
    .bind(id)
    .execute(&mut *write.tx)
    .await?;
    write.commit().await
}

/// [`crate::store::Store::all_workflows`].
pub(in crate::store) async fn all(db: &Postgres) -> Result<Vec<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!("ORDER BY id"))
        .fetch_all(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::state_counts`].
pub(in crate::store) async fn state_counts(db: &Postgres) -> Result<StateCounts, StoreError> {
    let mut reader = db.reader().await?;
    let intents =
        sqlx::query_as("SELECT state, COUNT(*) FROM intents GROUP BY state ORDER BY state")
            .fetch_all(&mut *reader)
            .await?;
    let workflows =
        sqlx::query_as("SELECT state, COUNT(*) FROM workflows GROUP BY state ORDER BY state")
            .fetch_all(&mut *reader)
            .await?;
    let (oldest_active_workflow, overdue_workflows): (Option<Timestamp>, i64) = sqlx::query_as(
        "SELECT MIN(created_at), COUNT(*) FILTER (WHERE deadline < $1) FROM workflows
         WHERE state IN ('requested', 'preparing', 'prepared', 'executing')",
    )
    .bind(Timestamp::now())
    .fetch_one(&mut *reader)
    .await?;
    let oldest_intent_in_flight: Option<Timestamp> = sqlx::query_scalar(
        "SELECT MIN(created_at) FROM intents
         WHERE state IN ('pending', 'sent', 'unknown', 'abandoned')",
    )
    .fetch_one(&mut *reader)
    .await?;
    Ok(StateCounts {
        intents,
        workflows,
        oldest_active_workflow,
        oldest_intent_in_flight,
        overdue_workflows,
    })
}

/// Active workflows past their deadline at `now`, the most overdue first (the `state` report).
pub(super) async fn overdue(
    conn: &mut PgConnection,
    now: Timestamp,
) -> Result<Vec<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!(
        "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') AND deadline < $1
         ORDER BY deadline"
    ))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Cancels workflow `id` if it is active (a final state is never changed again), and queues
/// its notification in the same transaction; `None` when it is unknown or already final.
pub(super) async fn cancel_active(
    write: &mut Write<'_>,
    id: i64,
    reason: &str,
    now: Timestamp,
) -> Result<Option<WorkflowRecord>, StoreError> {
    let cancelled: Option<WorkflowRecord> = sqlx::query_as(concat!(
        "UPDATE workflows SET state = 'cancelled', reason = $1, updated_at = $2, deadline = NULL
         WHERE id = $3 AND state IN ('requested', 'preparing', 'prepared', 'executing')
         RETURNING ",
        workflow_columns!()
    ))
    .bind(reason)
    .bind(now)
    .bind(id)
    .fetch_optional(&mut *write.tx)
    .await?;
    if let Some(finished) = cancelled.as_ref().and_then(notice::workflow_finished) {
        write.notify(&finished).await?;
    }
    Ok(cancelled)
}

/// The active workflows, then the `finished` newest finished ones (the `state` report).
pub(super) async fn listed(
    conn: &mut PgConnection,
    finished: u32,
) -> Result<Vec<WorkflowRecord>, StoreError> {
    let mut listed: Vec<WorkflowRecord> = sqlx::query_as(select_workflows!(
        "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let recent: Vec<WorkflowRecord> = sqlx::query_as(select_workflows!(
        "WHERE state NOT IN ('requested', 'preparing', 'prepared', 'executing')
         ORDER BY id DESC LIMIT $1"
    ))
    .bind(i64::from(finished))
    .fetch_all(&mut *conn)
    .await?;
    listed.extend(recent);
    Ok(listed)
}
