//! Workflows on PostgreSQL (see `store/workflows.rs` for the rules).

use sqlx::PgConnection;

use super::Postgres;
use crate::store::workflows::{returning_workflow, select_workflows};
use crate::store::{
    NewWorkflow, StateCounts, StoreError, Timestamp, WorkflowChange, WorkflowRecord,
};

/// [`crate::store::Store::create_workflow`].
pub(in crate::store) async fn create(
    db: &Postgres,
    new: &NewWorkflow,
) -> Result<Option<WorkflowRecord>, StoreError> {
    let now = Timestamp::now();
    let mut write = db.begin_write().await?;
    let created = sqlx::query_as(concat!(
        "INSERT INTO workflows (kind, scope, signal_key, signal_instance, strategy_id, account,
                                position_id, condition, state, reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)
         ON CONFLICT DO NOTHING",
        returning_workflow!()
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
    .fetch_optional(&mut *write.tx)
    .await?;
    write.tx.commit().await?;
    Ok(created)
}

/// [`crate::store::Store::update_workflow`].
pub(in crate::store) async fn update(
    db: &Postgres,
    id: i64,
    change: &WorkflowChange,
) -> Result<WorkflowRecord, StoreError> {
    let mut write = db.begin_write().await?;
    // A final state is final (see `store/workflows.rs`).
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
             updated_at = $6
         WHERE id = $7",
        returning_workflow!()
    ))
    .bind(change.state)
    .bind(&change.job_id)
    .bind(change.plan.as_ref().map(sqlx::types::Json))
    .bind(change.group_done)
    .bind(&change.reason)
    .bind(Timestamp::now())
    .bind(id)
    .fetch_optional(&mut *write.tx)
    .await?;
    write.tx.commit().await?;
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
    Ok(StateCounts { intents, workflows })
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
