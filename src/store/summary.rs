//! One consistent snapshot of the store for the `state` subcommand.

use serde::Serialize;

use super::events::{self, QuarantinedEvent};
use super::history::{self, HistoryGapRecord};
use super::intents::{self, IntentRecord};
use super::jobs::{self, PrepareJobRecord};
use super::lease::LeaseRecord;
use super::operator::{self, OperatorAction, TradingState};
use super::outbox::{self, OutboxSummary};
use super::positions::{self, PositionRecord};
use super::workflows::{self, WorkflowRecord};
use super::{Store, StoreError, Timestamp, on_postgres, postgres};

/// How many finished workflows the summary lists after the active ones.
pub(super) const WORKFLOWS_LISTED: u32 = 20;

/// How many quarantined events the summary lists (the count covers all of them).
pub(super) const QUARANTINE_LISTED: u32 = 20;

/// How many operator actions the summary lists, newest first.
pub(super) const ACTIONS_LISTED: u32 = 10;

/// What an operator needs to see of the state: where the event stream stands, what is still in
/// flight, and what needs a human.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreSummary {
    /// The database: the SQLite file, or the PostgreSQL server, database and schema.
    pub database: String,
    /// The last processed `EventSeqId`.
    pub cursor: Option<i64>,
    /// When the cursor last moved.
    pub cursor_updated_at: Option<Timestamp>,
    /// The trading state (`None`: never started on this database).
    pub trading_state: Option<TradingState>,
    /// The newest operator actions, newest first.
    pub operator_actions: Vec<OperatorAction>,
    /// Row counts per table and state.
    pub counts: Vec<StateCount>,
    /// The leadership lease of each group (PostgreSQL; empty on SQLite).
    pub leases: Vec<LeaseRecord>,
    /// Intents not yet final, oldest first.
    pub intents_in_flight: Vec<IntentRecord>,
    /// Prepare jobs not yet final, oldest first.
    pub prepare_jobs_in_flight: Vec<PrepareJobRecord>,
    /// Workflows with steps left, then the newest finished ones.
    pub workflows: Vec<WorkflowRecord>,
    /// Active workflows past their deadline, the most overdue first.
    pub overdue_workflows: Vec<WorkflowRecord>,
    /// Positions a monitor runs for.
    pub monitored_positions: Vec<PositionRecord>,
    /// The newest quarantined events, newest first.
    pub quarantined_events: Vec<QuarantinedEvent>,
    /// Every hole met in the server's history, oldest first.
    pub history_gaps: Vec<HistoryGapRecord>,
    /// The notification outbox: pending, dropped, each sink's progress, the newest refusals.
    pub notifications: OutboxSummary,
}

/// Rows of one table in one state (`state` is `None` for tables without one). For
/// `applied_events` the state is the hub target and the count the events applied for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StateCount {
    /// Table (or `applied_events`).
    pub table: String,
    /// State, status or target.
    pub state: Option<String>,
    /// How many.
    pub count: i64,
}

impl Store {
    /// Everything `state` prints, read in one transaction so the parts agree with each other
    /// even while the daemon writes.
    pub async fn summary(&self) -> Result<StoreSummary, StoreError> {
        let db = on_postgres!(self, pg => postgres::summary::summary(pg));
        let mut tx = db.readers.begin().await?;
        let cursor: Option<(i64, Timestamp)> =
            sqlx::query_as("SELECT seq_id, updated_at FROM event_cursor WHERE id = 1")
                .fetch_optional(&mut *tx)
                .await?;
        let counts = sqlx::query_as(
            "SELECT 'processed_events' AS \"table\", NULL AS state, COUNT(*) AS count
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
            database: self.describe(),
            leases: Vec::new(),
            cursor: cursor.map(|(seq, _)| seq),
            cursor_updated_at: cursor.map(|(_, at)| at),
            trading_state: operator::stored_state(&mut tx).await?,
            operator_actions: operator::latest_actions(&mut tx, ACTIONS_LISTED).await?,
            counts,
            intents_in_flight: intents::in_states(&mut tx, &intents::IN_FLIGHT).await?,
            prepare_jobs_in_flight: jobs::in_flight(&mut tx).await?,
            workflows: workflows::listed(&mut tx, WORKFLOWS_LISTED).await?,
            overdue_workflows: workflows::overdue(&mut tx, Timestamp::now()).await?,
            monitored_positions: positions::monitored(&mut tx).await?,
            quarantined_events: events::latest_quarantined(&mut tx, QUARANTINE_LISTED).await?,
            history_gaps: history::all(&mut tx).await?,
            notifications: outbox::summary(&mut tx).await?,
        };
        tx.commit().await?;
        Ok(summary)
    }
}
