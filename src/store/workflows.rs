//! Workflows: one durable state machine per signal instance (signal → prepare → execute).
//! The uniqueness rules live here as indexes: one workflow per signal instance, and at most one
//! active workflow per scope (strategy+account for entries, the position otherwise).

use std::fmt;

use serde::Serialize;

use super::{Store, StoreError, Timestamp, begin_write, on_postgres, postgres};
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
    /// Why it is where it is (decisions, failures).
    pub reason: Option<String>,
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
}

/// `SELECT` of every [`WorkflowRecord`] column, followed by the given clause.
macro_rules! select_workflows {
    ($clause:literal) => {
        concat!(
            "SELECT id, kind, scope, signal_key, signal_instance, strategy_id, account, position_id,
                    condition, state, job_id, plan, groups_done, reason, created_at, updated_at
             FROM workflows ",
            $clause
        )
    };
}
pub(super) use select_workflows;

/// Every [`WorkflowRecord`] column, for `RETURNING`.
macro_rules! returning_workflow {
    () => {
        " RETURNING id, kind, scope, signal_key, signal_instance, strategy_id, account,
                    position_id, condition, state, job_id, plan, groups_done, reason,
                    created_at, updated_at"
    };
}
pub(super) use returning_workflow;

impl Store {
    /// Opens a workflow unless its signal instance already has one or its scope has an active
    /// one (then `None`: nothing to do now).
    pub async fn create_workflow(
        &self,
        new: &NewWorkflow,
    ) -> Result<Option<WorkflowRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::create(pg, new));
        let now = Timestamp::now();
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let created = sqlx::query_as(concat!(
            "INSERT INTO workflows (kind, scope, signal_key, signal_instance, strategy_id, account,
                                    position_id, condition, state, reason, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Applies one change and returns the workflow as it now is.
    pub async fn update_workflow(
        &self,
        id: i64,
        change: &WorkflowChange,
    ) -> Result<WorkflowRecord, StoreError> {
        let db = on_postgres!(self, pg => postgres::workflows::update(pg, id, change));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        // A final state is final: a step that was in flight when an operator cancelled the
        // workflow does not bring it back.
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
                 updated_at = ?6
             WHERE id = ?7",
            returning_workflow!()
        ))
        .bind(change.state)
        .bind(&change.job_id)
        .bind(change.plan.as_ref().map(serde_json::Value::to_string))
        .bind(change.group_done)
        .bind(&change.reason)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
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
        Ok(StateCounts { intents, workflows })
    }
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

/// Rows per state of the intents and workflows tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// `(state, count)` of intents.
    pub intents: Vec<(String, i64)>,
    /// `(state, count)` of workflows.
    pub workflows: Vec<(String, i64)>,
}
