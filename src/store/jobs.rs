//! Async prepare jobs (JobId lifecycle), kept so a restart can poll the ones still in flight.

use serde::Serialize;
use sqlx::SqliteConnection;

use super::{Store, StoreError, Timestamp, begin_write, execute_for_rows, on_postgres, postgres};
use mesolive_api::FlowKind;

/// Where a prepare job is. Completed, failed and cancelled are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum JobStatus {
    /// Started (a JobId was returned), no progress seen yet.
    Pending,
    /// The server reports it running.
    Running,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Cancelled.
    Cancelled,
}

impl JobStatus {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// A prepare job's latest known facts: from starting it, polling it, or its completion event.
/// Optional fields that are `None` keep their stored value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrepareJobUpdate {
    /// The server's JobId.
    pub job_id: String,
    /// Which prepare flow.
    pub kind: FlowKind,
    /// The intent that started it, if this daemon did.
    pub intent_key: Option<String>,
    /// The strategy it prepares for.
    pub strategy_id: i64,
    /// The position (exit and adjustment jobs).
    pub position_id: Option<i64>,
    /// The broker account, when known.
    pub account: Option<String>,
    /// Where it is; a final status is never replaced by another.
    pub status: JobStatus,
    /// The prepare result, when completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The failure reason, when failed.
    pub error: Option<String>,
}

/// A stored prepare job.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct PrepareJobRecord {
    /// The server's JobId.
    pub job_id: String,
    /// Which prepare flow.
    #[sqlx(try_from = "String")]
    pub kind: FlowKind,
    /// The intent that started it, if this daemon did.
    pub intent_key: Option<String>,
    /// The strategy it prepares for.
    pub strategy_id: i64,
    /// The position, for exit and adjustment jobs.
    pub position_id: Option<i64>,
    /// The broker account, when known.
    pub account: Option<String>,
    /// Where it is.
    pub status: JobStatus,
    /// The prepare result, when completed.
    #[sqlx(json(nullable))]
    pub result: Option<serde_json::Value>,
    /// The failure reason, when failed.
    pub error: Option<String>,
    /// When this daemon first stored it.
    pub created_at: Timestamp,
    /// When this row last changed.
    pub updated_at: Timestamp,
}

/// Every [`PrepareJobRecord`] column, for `SELECT` and `RETURNING`.
macro_rules! job_columns {
    () => {
        "job_id, kind, intent_key, strategy_id, position_id, account, status, result, error, \
         created_at, updated_at"
    };
}
pub(super) use job_columns;

/// `SELECT` of every [`PrepareJobRecord`] column, followed by the given clause.
macro_rules! select_jobs {
    ($clause:literal) => {
        concat!("SELECT ", job_columns!(), " FROM prepare_jobs ", $clause)
    };
}
pub(super) use select_jobs;

/// The `SET` assignments of status, result and error from the given new values that leave a job
/// in a final status untouched: a late poll or a replayed event cannot un-finish a job.
macro_rules! keep_final_status {
    ($status:literal, $result:literal, $error:literal) => {
        concat!(
            "status = CASE WHEN prepare_jobs.status IN ('completed', 'failed', 'cancelled')
                           THEN prepare_jobs.status ELSE ",
            $status,
            " END,
             result = CASE WHEN prepare_jobs.status IN ('completed', 'failed', 'cancelled')
                           THEN prepare_jobs.result ELSE COALESCE(",
            $result,
            ", prepare_jobs.result) END,
             error = CASE WHEN prepare_jobs.status IN ('completed', 'failed', 'cancelled')
                          THEN prepare_jobs.error ELSE COALESCE(",
            $error,
            ", prepare_jobs.error) END"
        )
    };
}
pub(super) use keep_final_status;

impl Store {
    /// Record a job: right after `StartPreparePosition*` returned its JobId, or after a poll.
    pub async fn upsert_prepare_job(&self, update: &PrepareJobUpdate) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::jobs::upsert_one(pg, update));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        upsert(&mut tx, &[update], Timestamp::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Move a known job to `status` (with its result or error), as a status poll reported it.
    /// A job already in a final status keeps it; the stored job is returned either way.
    pub async fn set_prepare_job_status(
        &self,
        job_id: &str,
        status: JobStatus,
        result: Option<&serde_json::Value>,
        error: Option<&str>,
    ) -> Result<PrepareJobRecord, StoreError> {
        let db =
            on_postgres!(self, pg => postgres::jobs::set_status(pg, job_id, status, result, error));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let job: Option<PrepareJobRecord> = sqlx::query_as(concat!(
            "UPDATE prepare_jobs SET ",
            keep_final_status!("?1", "?2", "?3"),
            ", updated_at = ?4 WHERE job_id = ?5 RETURNING ",
            job_columns!()
        ))
        .bind(status)
        .bind(result.map(serde_json::Value::to_string))
        .bind(error)
        .bind(Timestamp::now())
        .bind(job_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        job.ok_or_else(|| StoreError::NotFound {
            what: "prepare job",
            id: job_id.to_owned(),
        })
    }

    /// One job by JobId.
    pub async fn prepare_job(&self, job_id: &str) -> Result<Option<PrepareJobRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::jobs::get(pg, job_id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_jobs!("WHERE job_id = ?"))
            .bind(job_id)
            .fetch_optional(&mut *reader)
            .await?)
    }

    /// Jobs not yet final, oldest first: the reconciler polls each after a restart or reconnect.
    pub async fn prepare_jobs_in_flight(&self) -> Result<Vec<PrepareJobRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::jobs::in_flight(pg));
        let mut reader = db.readers.acquire().await?;
        in_flight(&mut reader).await
    }
}

/// Jobs not yet final, oldest first.
pub(super) async fn in_flight(
    conn: &mut SqliteConnection,
) -> Result<Vec<PrepareJobRecord>, StoreError> {
    Ok(sqlx::query_as(select_jobs!(
        "WHERE status IN ('pending', 'running') ORDER BY created_at, job_id"
    ))
    .fetch_all(conn)
    .await?)
}

/// Insert or update jobs (the completion-event effect, and `upsert_prepare_job`), later
/// updates winning, a final status kept.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    updates: &[&PrepareJobUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    execute_for_rows(
        conn,
        concat!(
            "INSERT INTO prepare_jobs (job_id, kind, intent_key, strategy_id, position_id,
                                       account, status, result, error, created_at, updated_at)
             SELECT j.value ->> 'job_id', j.value ->> 'kind', j.value ->> 'intent_key',
                    j.value ->> 'strategy_id', j.value ->> 'position_id', j.value ->> 'account',
                    j.value ->> 'status', j.value -> 'result', j.value ->> 'error', ?2, ?2
             FROM jsonb_each(?1) AS j WHERE true ORDER BY j.key
             ON CONFLICT (job_id) DO UPDATE SET ",
            keep_final_status!("excluded.status", "excluded.result", "excluded.error"),
            ",
                 intent_key = COALESCE(excluded.intent_key, prepare_jobs.intent_key),
                 position_id = COALESCE(excluded.position_id, prepare_jobs.position_id),
                 account = COALESCE(excluded.account, prepare_jobs.account),
                 updated_at = excluded.updated_at"
        ),
        updates,
        now,
    )
    .await
}
