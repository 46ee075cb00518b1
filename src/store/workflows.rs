//! Workflows: one durable state machine per attempt at a signal instance (signal → prepare →
//! execute). The uniqueness rules live here as indexes: one workflow per signal instance and
//! attempt, and at most one active workflow per scope (strategy+account for entries, the
//! position otherwise).

use std::fmt;

use serde::Serialize;

use super::{Flush, Store, StoreError, Timestamp, begin_write, on_postgres, outbox, postgres};
use crate::notifications::notice;
use mesolive_api::FlowKind;

/// Where a workflow is. `done`, `failed`, `cancelled` and `observed` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum WorkflowState {
    /// Opened; the prepare call is next.
    Requested,
    /// The prepare job runs on the server.
    Preparing,
    /// The plan is known and allowed; execution is next.
    Prepared,
    /// Leg groups are being executed.
    Executing,
    /// Executed (or applied server-side).
    Done,
    /// A step failed; the reason says which.
    Failed,
    /// Stopped on purpose without executing: signal went Off, not allowed, gate closed.
    Cancelled,
    /// Observe mode: recorded what would have been done; nothing was sent.
    Observed,
}

impl WorkflowState {
    /// Every state, for reports.
    pub const ALL: [WorkflowState; 8] = [
        WorkflowState::Requested,
        WorkflowState::Preparing,
        WorkflowState::Prepared,
        WorkflowState::Executing,
        WorkflowState::Done,
        WorkflowState::Failed,
        WorkflowState::Cancelled,
        WorkflowState::Observed,
    ];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowState::Requested => "requested",
            WorkflowState::Preparing => "preparing",
            WorkflowState::Prepared => "prepared",
            WorkflowState::Executing => "executing",
            WorkflowState::Done => "done",
            WorkflowState::Failed => "failed",
            WorkflowState::Cancelled => "cancelled",
            WorkflowState::Observed => "observed",
        }
    }

    /// Whether the workflow still has steps to take.
    pub fn is_active(self) -> bool {
        matches!(
            self,
            WorkflowState::Requested
                | WorkflowState::Preparing
                | WorkflowState::Prepared
                | WorkflowState::Executing
        )
    }
}

impl fmt::Display for WorkflowState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A workflow about to be opened for a signal instance.
#[derive(Debug, Clone, PartialEq)]
pub struct NewWorkflow {
    /// Entry, exit or adjustment.
    pub kind: FlowKind,
    /// What may have only one active workflow.
    pub scope: String,
    /// The signal it acts on.
    pub signal_key: String,
    /// The signal instance (the event that turned it On).
    pub signal_instance: String,
    /// The strategy.
    pub strategy_id: i64,
    /// The broker account, when known.
    pub account: Option<String>,
    /// The position (exit, adjustment).
    pub position_id: Option<i64>,
    /// The adjustment condition.
    pub condition: Option<String>,
    /// `requested`, or a final state when the mode or limits say no.
    pub state: WorkflowState,
    /// Why it starts final, if it does.
    pub reason: Option<String>,
    /// 1 for the first workflow of the signal instance, then one more per retry.
    pub attempt: i64,
    /// When its first step must be done by (`None` when it starts final).
    pub deadline: Option<Timestamp>,
}

/// How far the current instance of a signal that is On got: its highest attempt.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LatestAttempt {
    /// The signal.
    pub signal_key: String,
    /// Its current instance.
    pub signal_instance: String,
    /// The highest attempt opened for that instance.
    pub attempt: i64,
}

/// A stored workflow.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct WorkflowRecord {
    /// Row id; part of the idempotency keys of its intents.
    pub id: i64,
    /// Entry, exit or adjustment.
    #[sqlx(try_from = "String")]
    pub kind: FlowKind,
    /// What may have only one active workflow.
    pub scope: String,
    /// The signal it acts on.
    pub signal_key: String,
    /// The signal instance.
    pub signal_instance: String,
    /// The strategy.
    pub strategy_id: i64,
    /// The broker account.
    pub account: Option<String>,
    /// The position.
    pub position_id: Option<i64>,
    /// The adjustment condition.
    pub condition: Option<String>,
    /// Where it is.
    pub state: WorkflowState,
    /// The prepare job, once started.
    pub job_id: Option<String>,
    /// The prepared plan (the job's result), once known.
    #[sqlx(json(nullable))]
    pub plan: Option<serde_json::Value>,
    /// Leg groups executed so far.
    #[sqlx(json)]
    pub groups_done: Vec<i64>,
    /// Why it is where it is (decisions, failures, whether it is retried).
    pub reason: Option<String>,
    /// 1 for the first workflow of the signal instance, then one more per retry.
    pub attempt: i64,
    /// When the current step must be done by; `None` once final.
    pub deadline: Option<Timestamp>,
    /// A final workflow: when the next attempt of its signal instance may open.
    pub retry_at: Option<Timestamp>,
    /// When it was opened.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// One change to a workflow; unset fields keep their value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkflowChange {
    /// The new state.
    pub state: Option<WorkflowState>,
    /// The prepare job.
    pub job_id: Option<String>,
    /// The prepared plan.
    pub plan: Option<serde_json::Value>,
    /// A leg group just executed.
    pub group_done: Option<i64>,
    /// Why.
    pub reason: Option<String>,
    /// The new deadline of an active workflow (a final state clears it).
    pub deadline: Option<Timestamp>,
    /// When the next attempt may open (a final workflow that is retried).
    pub retry_at: Option<Timestamp>,
    /// The risk rule that refused the workflow (notified as a refusal, not a cancellation).
    pub refused_by: Option<&'static str>,
}

impl WorkflowChange {
    /// A move to `state`.
    pub fn to(state: WorkflowState) -> Self {
        WorkflowChange {
            state: Some(state),
            ..Default::default()
        }
    }

    /// With a reason.
    pub fn because(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    /// With the prepare job id.
    pub fn job(mut self, job_id: &str) -> Self {
        self.job_id = Some(job_id.to_owned());
        self
    }

    /// With the prepared plan.
    pub fn plan(mut self, plan: serde_json::Value) -> Self {
        self.plan = Some(plan);
        self
    }

    /// Recording one more executed leg group.
    pub fn group_done(mut self, group: i64) -> Self {
        self.group_done = Some(group);
        self
    }

    /// With the deadline of the (new) current step.
    pub fn deadline(mut self, deadline: Timestamp) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// With the time the next attempt may open.
    pub fn retry_at(mut self, at: Timestamp) -> Self {
        self.retry_at = Some(at);
        self
    }

    /// Refused by the risk rule `rule`.
    pub fn refused_by(mut self, rule: &'static str) -> Self {
        self.refused_by = Some(rule);
        self
    }
}

/// Every [`WorkflowRecord`] column, for `SELECT` and `RETURNING`.
macro_rules! workflow_columns {
    () => {
        "id, kind, scope, signal_key, signal_instance, strategy_id, account, position_id, \
         condition, state, job_id, plan, groups_done, reason, attempt, deadline, retry_at, \
         created_at, updated_at"
    };
}

/// `SELECT` of every [`WorkflowRecord`] column, followed by the given clause.
macro_rules! select_workflows {
    ($clause:literal) => {
        concat!("SELECT ", workflow_columns!(), " FROM workflows ", $clause)
    };
}
pub(super) use {select_workflows, workflow_columns};

/// [`Store::latest_attempts`] (the same text in both backends): the signals table is small and
/// each instance's attempts are found in the `(signal_key, signal_instance, attempt)` index,
/// without reading a workflow row.
pub(super) const LATEST_ATTEMPTS: &str = "SELECT s.signal_key, s.instance AS signal_instance,
            MAX(w.attempt) AS attempt
     FROM signals AS s
     JOIN workflows AS w ON w.signal_key = s.signal_key AND w.signal_instance = s.instance
     WHERE s.state = 'On' GROUP BY s.signal_key, s.instance";

impl Store {
    /// Opens a workflow unless its signal instance already has this attempt or its scope has
    /// an active workflow (then `None`: nothing to do now). One opened final (`cancelled` by
    /// admission) is notified in the same transaction.
    pub async fn create_workflow(
        &self,
        new: &NewWorkflow,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::create(pg, new));
        let now = Timestamp::now();
        // An active workflow's first call is an intent, flushed before it is sent; one opened
        // in a final state is notified (the notice leaves the process), so flushed now.
        let flush = if new.state.is_active() {
            Flush::WithNext
        } else {
            Flush::AtCommit
        };
        let mut writer = db.writer_flushing(flush).await?;
        let mut tx = begin_write(&mut writer).await?;
        let created = sqlx::query_as(concat!(
            "INSERT INTO workflows (kind, scope, signal_key, signal_instance, strategy_id, account,
                                    position_id, condition, state, reason, attempt, deadline,
                                    created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(new.attempt)
        .bind(new.deadline)
        .bind(now)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let finished = created.as_ref().and_then(notice::workflow_finished);
        if let Some(notice) = &finished {
            outbox::enqueue(&mut tx, notice).await?;
        }
        tx.commit().await?;
        if finished.is_some() {
            self.outbox_changed();
        }
        Ok(created)
    }

    /// Applies one change and returns the workflow as it now is. A move from an active state to
    /// `done`, `failed` or `cancelled` is notified in the same transaction.
    pub async fn update_workflow(
        &self,
        id: i64,
        change: &WorkflowChange,
    ) -> Result<WorkflowRecord, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::update(pg, id, change));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let before: Option<WorkflowState> =
            sqlx::query_scalar("SELECT state FROM workflows WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        // A final state is final: a step that was in flight when an operator cancelled the
        // workflow does not bring it back, nor give it a next attempt.
        let updated: Option<WorkflowRecord> = sqlx::query_as(concat!(
            "UPDATE workflows SET
                 state = CASE WHEN state IN ('done', 'failed', 'cancelled', 'observed') THEN state
                              ELSE COALESCE(?1, state) END,
                 job_id = COALESCE(?2, job_id),
                 plan = COALESCE(?3, plan),
                 groups_done = CASE WHEN ?4 IS NULL THEN groups_done
                     ELSE (SELECT json_group_array(g) FROM (
                         SELECT value AS g FROM json_each(groups_done) UNION SELECT ?4 ORDER BY g))
                     END,
                 reason = COALESCE(?5, reason),
                 updated_at = ?6,
                 deadline = CASE WHEN COALESCE(?1, state) IN ('requested', 'preparing', 'prepared', 'executing')
                     THEN COALESCE(?8, deadline) END,
                 retry_at = CASE WHEN state IN ('done', 'failed', 'cancelled', 'observed')
                     THEN retry_at ELSE COALESCE(?9, retry_at) END
             WHERE id = ?7
             RETURNING ",
            workflow_columns!()
        ))
        .bind(change.state)
        .bind(&change.job_id)
        .bind(change.plan.as_ref().map(serde_json::Value::to_string))
        .bind(change.group_done)
        .bind(&change.reason)
        .bind(Timestamp::now())
        .bind(id)
        .bind(change.deadline)
        .bind(change.retry_at)
        .fetch_optional(&mut *tx)
        .await?;
        let finished = updated
            .as_ref()
            .filter(|_| before.is_some_and(WorkflowState::is_active))
            .and_then(|workflow| match change.refused_by {
                Some(rule) => Some(notice::risk_refused(workflow, rule)),
                None => notice::workflow_finished(workflow),
            });
        if let Some(notice) = &finished {
            outbox::enqueue(&mut tx, notice).await?;
        }
        tx.commit().await?;
        if finished.is_some() {
            self.outbox_changed();
        }
        updated.ok_or(StoreError::NotFound {
            what: "workflow",
            id: id.to_string(),
        })
    }

    /// One workflow.
    pub async fn workflow(&self, id: i64) -> Result<Option<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::get(pg, id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_workflows!("WHERE id = ?"))
            .bind(id)
            .fetch_optional(&mut *reader)
            .await?)
    }

    /// Workflows with steps left, oldest first.
    pub async fn active_workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::active(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_workflows!(
            "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') ORDER BY id"
        ))
        .fetch_all(&mut *reader)
        .await?)
    }

    /// The highest attempt opened so far for the current instance of each signal that is On
    /// (an instance with no workflow yet is not listed): one read for every signal, where the
    /// workflow runner asks at each pass.
    pub async fn latest_attempts(&self) -> Result<Vec<LatestAttempt>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::latest_attempts(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(LATEST_ATTEMPTS)
            .fetch_all(&mut *reader)
            .await?)
    }

    /// Final workflows whose signal instance has a next attempt planned.
    pub async fn planned_retries(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::planned_retries(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_workflows!(
            "WHERE retry_at IS NOT NULL
               AND state NOT IN ('requested', 'preparing', 'prepared', 'executing')
             ORDER BY id"
        ))
        .fetch_all(&mut *reader)
        .await?)
    }

    /// Drops the planned next attempt of a final workflow, appending why to its reason.
    pub async fn drop_retry(&self, id: i64, why: &str) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::drop_retry(pg, id, why));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        sqlx::query(
            "UPDATE workflows SET retry_at = NULL,
                 reason = COALESCE(reason || '; ', '') || ?, updated_at = ?
             WHERE id = ? AND retry_at IS NOT NULL",
        )
        .bind(why)
        .bind(Timestamp::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every workflow, oldest first (tests, audits).
    pub async fn all_workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::all(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_workflows!("ORDER BY id"))
            .fetch_all(&mut *reader)
            .await?)
    }

    /// Intents and workflows counted by state, for the metrics gauges.
    pub async fn state_counts(&self) -> Result<StateCounts, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::state_counts(pg));
        let mut reader = db.readers.acquire().await?;
        let intents =
            sqlx::query_as("SELECT state, COUNT(*) FROM intents GROUP BY state ORDER BY state")
                .fetch_all(&mut *reader)
                .await?;
        let workflows =
            sqlx::query_as("SELECT state, COUNT(*) FROM workflows GROUP BY state ORDER BY state")
                .fetch_all(&mut *reader)
                .await?;
        let (oldest_active_workflow, overdue_workflows): (Option<Timestamp>, i64) = sqlx::query_as(
            "SELECT MIN(created_at), COALESCE(SUM(deadline < ?), 0) FROM workflows
             WHERE state IN ('requested', 'preparing', 'prepared', 'executing')",
        )
        .bind(Timestamp::now())
        .fetch_one(&mut *reader)
        .await?;
        let (oldest_intent_in_flight,): (Option<Timestamp>,) = sqlx::query_as(
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
}

/// Active workflows past their deadline at `now`, the most overdue first (the `state` report).
pub(super) async fn overdue(
    conn: &mut sqlx::SqliteConnection,
    now: Timestamp,
) -> Result<Vec<WorkflowRecord>, StoreError> {
    Ok(sqlx::query_as(select_workflows!(
        "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') AND deadline < ?
         ORDER BY deadline"
    ))
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// The active workflows, then the `finished` newest finished ones (the `state` report).
pub(super) async fn listed(
    conn: &mut sqlx::SqliteConnection,
    finished: u32,
) -> Result<Vec<WorkflowRecord>, StoreError> {
    let mut listed: Vec<WorkflowRecord> = sqlx::query_as(select_workflows!(
        "WHERE state IN ('requested', 'preparing', 'prepared', 'executing') ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let recent: Vec<WorkflowRecord> = sqlx::query_as(select_workflows!(
        "WHERE state NOT IN ('requested', 'preparing', 'prepared', 'executing')
         ORDER BY id DESC LIMIT ?"
    ))
    .bind(finished)
    .fetch_all(&mut *conn)
    .await?;
    listed.extend(recent);
    Ok(listed)
}

/// Rows per state of the intents and workflows tables, and what is old or late among them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// `(state, count)` of intents.
    pub intents: Vec<(String, i64)>,
    /// `(state, count)` of workflows.
    pub workflows: Vec<(String, i64)>,
    /// When the oldest active workflow was opened.
    pub oldest_active_workflow: Option<Timestamp>,
    /// When the oldest intent not settled (pending, sent, unknown, abandoned) was committed.
    pub oldest_intent_in_flight: Option<Timestamp>,
    /// Active workflows past their deadline.
    pub overdue_workflows: i64,
}

/// Cancels workflow `id` if it is active (a final state is never changed again), and queues
/// its notification in the same transaction; `None` when it is unknown or already final.
pub(super) async fn cancel_active(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    reason: &str,
    now: Timestamp,
) -> Result<Option<WorkflowRecord>, StoreError> {
    let cancelled: Option<WorkflowRecord> = sqlx::query_as(concat!(
        "UPDATE workflows SET state = 'cancelled', reason = ?, updated_at = ?, deadline = NULL
         WHERE id = ? AND state IN ('requested', 'preparing', 'prepared', 'executing')
         RETURNING ",
        workflow_columns!()
    ))
    .bind(reason)
    .bind(now)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(notice) = cancelled.as_ref().and_then(notice::workflow_finished) {
        outbox::enqueue(tx, &notice).await?;
    }
    Ok(cancelled)
}
