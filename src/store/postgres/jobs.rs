//! Prepare jobs on PostgreSQL (see `store/jobs.rs` for the rules).

use sqlx::PgConnection;

use super::{Postgres, upsert_in_rounds};
use crate::store::jobs::{job_columns, keep_final_status, select_jobs};
use crate::store::{JobStatus, PrepareJobRecord, PrepareJobUpdate, StoreError, Timestamp};

/// [`crate::store::Store::upsert_prepare_job`].
pub(in crate::store) async fn upsert_one(
    db: &Postgres,
    update: &PrepareJobUpdate,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    upsert(&mut write.tx, &[update], Timestamp::now()).await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::set_prepare_job_status`].
pub(in crate::store) async fn set_status(
    db: &Postgres,
    job_id: &str,
    status: JobStatus,
    result: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<PrepareJobRecord, StoreError> {
    let mut write = db.begin_write().await?;
    let job: Option<PrepareJobRecord> = sqlx::query_as(concat!(
        "UPDATE prepare_jobs SET ",
        keep_final_status!("$1", "$2", "$3"),
        ", updated_at = $4 WHERE job_id = $5 RETURNING ",
        job_columns!()
    ))
    .bind(status)
    .bind(result.map(sqlx::types::Json))
    .bind(error)
    .bind(Timestamp::now())
    .bind(job_id)
    .fetch_optional(&mut *write.tx)
    .await?;
    write.tx.commit().await?;
    job.ok_or_else(|| StoreError::NotFound {
        what: "prepare job",
        id: job_id.to_owned(),
    })
}

/// [`crate::store::Store::prepare_job`].
pub(in crate::store) async fn get(
    db: &Postgres,
    job_id: &str,
) -> Result<Option<PrepareJobRecord>, StoreError> {
    Ok(sqlx::query_as(select_jobs!("WHERE job_id = $1"))
        .bind(job_id)
        .fetch_optional(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::prepare_jobs_in_flight`].
pub(in crate::store) async fn in_flight(
    db: &Postgres,
) -> Result<Vec<PrepareJobRecord>, StoreError> {
    of_flight(&mut *db.reader().await?).await
}

/// Jobs not yet final, oldest first.
pub(super) async fn of_flight(
    conn: &mut PgConnection,
) -> Result<Vec<PrepareJobRecord>, StoreError> {
    Ok(sqlx::query_as(select_jobs!(
        "WHERE status IN ('pending', 'running') ORDER BY created_at, job_id"
    ))
    .fetch_all(conn)
    .await?)
}

/// Insert or update jobs, later updates winning, a final status kept.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    updates: &[&PrepareJobUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    upsert_in_rounds(
        conn,
        concat!(
            "INSERT INTO prepare_jobs (job_id, kind, intent_key, strategy_id, position_id,
                                       account, status, result, error, created_at, updated_at)
             SELECT j.job_id, j.kind, j.intent_key, j.strategy_id, j.position_id, j.account,
                    j.status, j.result, j.error, $2, $2
             FROM jsonb_to_recordset($1::jsonb) AS j(job_id text, kind text, intent_key text,
                 strategy_id bigint, position_id bigint, account text, status text,
                 result jsonb, error text)
             ON CONFLICT (job_id) DO UPDATE SET ",
            keep_final_status!("excluded.status", "excluded.result", "excluded.error"),
            ",
                 intent_key = COALESCE(excluded.intent_key, prepare_jobs.intent_key),
                 position_id = COALESCE(excluded.position_id, prepare_jobs.position_id),
                 account = COALESCE(excluded.account, prepare_jobs.account),
                 updated_at = excluded.updated_at"
        ),
        updates,
        |update| update.job_id.as_str(),
        now,
    )
    .await
}
