//! Operator control in the store: the trading state (persisted like the cursor, so a halted
//! daemon starts halted), the operator actions shown by `state` and `ctl status`, the risk
//! switches already made (once per rule, account and trading day), and the reads the risk rules
//! count on (realized PnL marks, intents per account). Each method is one small transaction;
//! on PostgreSQL (`postgres/operator.rs`) each write is fenced like every other.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, FromRow, Row, SqliteConnection, Type};

use super::workflows::WorkflowRecord;
use super::{
    Store, StoreError, Timestamp, begin_write, decimal_column, on_postgres, outbox, postgres,
};
use crate::notifications::notice;

/// What the daemon may send. Ordered from the least to the most restrictive.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, sqlx::Type,
)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum TradingState {
    /// Everything the automation mode allows.
    Active,
    /// No new entries (and no adjustments unless `automation.adjust_in_reduce_only`); exits go on.
    ReduceOnly,
    /// No state-changing call at all; reads, settling and monitoring go on.
    Halted,
}

impl TradingState {
    /// Every state, for the `mesolive_trading_state{state}` family.
    pub const ALL: [TradingState; 3] = [
        TradingState::Active,
        TradingState::ReduceOnly,
        TradingState::Halted,
    ];

    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::ReduceOnly => "reduce_only",
            TradingState::Halted => "halted",
        }
    }
}

impl fmt::Display for TradingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TradingState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        TradingState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("{text:?} is not one of active, reduce_only, halted"))
    }
}

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum ActionSource {
    /// `mesolive-supervisor ctl …` (through the socket, or on the database with the daemon stopped).
    Ctl,
    /// A risk rule (`risk.*`).
    Risk,
    /// The configuration (`automation.initial_state` on a fresh database).
    Config,
    /// SIGHUP (a reload).
    Sighup,
}

impl ActionSource {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionSource::Ctl => "ctl",
            ActionSource::Risk => "risk",
            ActionSource::Config => "config",
            ActionSource::Sighup => "sighup",
        }
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ActionKind {
    /// The trading state changed.
    TradingState,
    /// An active workflow was cancelled.
    CancelWorkflow,
    /// The configuration was reloaded.
    Reload,
}

impl ActionKind {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::TradingState => "trading_state",
            ActionKind::CancelWorkflow => "cancel_workflow",
            ActionKind::Reload => "reload",
        }
    }
}

/// One recorded operator action.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OperatorAction {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: Timestamp,
    /// What.
    pub action: ActionKind,
    /// The trading state before (state changes).
    pub from_state: Option<TradingState>,
    /// The trading state after (state changes).
    pub to_state: Option<TradingState>,
    /// The workflow (cancellations).
    pub workflow_id: Option<i64>,
    /// Why, as given (for a risk rule: its name and figures).
    pub reason: String,
    /// Who.
    pub source: ActionSource,
}

/// A trading state change as committed: `from == to` when the state already was `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateChange {
    /// Before.
    pub from: TradingState,
    /// After.
    pub to: TradingState,
}

impl StateChange {
    /// Whether the state actually changed.
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

/// A position's realized PnL at the start of a period and at its last change within it.
#[derive(Debug, Clone, PartialEq)]
pub struct PnlMovement {
    /// The position.
    pub position_id: i64,
    /// Its broker account.
    pub account: String,
    /// The last mark before the period (`None`: the position had none).
    pub opening: Option<Decimal>,
    /// The last mark within the period.
    pub latest: Decimal,
}

/// Generic over the backend's row type: both keep the same columns.
impl<'r, R> FromRow<'r, R> for PnlMovement
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(PnlMovement {
            position_id: row.try_get("position_id")?,
            account: row.try_get("account")?,
            opening: decimal_column(row, "opening")?,
            latest: decimal_column(row, "latest")?.unwrap_or_default(),
        })
    }
}

/// Why a workflow could not be cancelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRefusal {
    /// No workflow has this id.
    Unknown,
    /// It already ended, in this state.
    Finished(super::WorkflowState),
}

impl Store {
    /// The stored trading state; `None` on a database that never had one.
    pub async fn trading_state(&self) -> Result<Option<TradingState>, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::trading_state(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(
            sqlx::query_scalar("SELECT state FROM trading_state WHERE id = 1")
                .fetch_optional(&mut *reader)
                .await?,
        )
    }

    /// The stored trading state, or `initial` written (and recorded as an action of the
    /// configuration) when the database has none yet.
    pub async fn trading_state_or_init(
        &self,
        initial: TradingState,
    ) -> Result<TradingState, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::trading_state_or_init(pg, initial));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        if let Some(state) = current_state(&mut tx).await? {
            tx.commit().await?;
            return Ok(state);
        }
        let now = Timestamp::now();
        write_state(&mut tx, initial, now).await?;
        insert_action(
            &mut tx,
            now,
            ActionKind::TradingState,
            (None, Some(initial)),
            None,
            "automation.initial_state on a database with no trading state",
            ActionSource::Config,
        )
        .await?;
        tx.commit().await?;
        Ok(initial)
    }

    /// Sets the trading state and records the change (nothing is recorded when it already was
    /// `to`). A database with no state yet counts as `active` before.
    pub async fn set_trading_state(
        &self,
        to: TradingState,
        reason: &str,
        source: ActionSource,
    ) -> Result<StateChange, StoreError> {
        let db =
            on_postgres!(self, pg => postgres::operator::set_trading_state(pg, to, reason, source));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let from = current_state(&mut tx)
            .await?
            .unwrap_or(TradingState::Active);
        let change = StateChange { from, to };
        if change.changed() {
            let now = Timestamp::now();
            write_state(&mut tx, to, now).await?;
            insert_action(
                &mut tx,
                now,
                ActionKind::TradingState,
                (Some(from), Some(to)),
                None,
                reason,
                source,
            )
            .await?;
            let told = notice::trading_state(from, to, reason, source.as_str());
            outbox::enqueue(&mut tx, &told).await?;
        }
        tx.commit().await?;
        if change.changed() {
            self.outbox_changed();
        }
        Ok(change)
    }

    /// A risk rule fires for an account on a trading day: unless it already fired that day,
    /// records it and raises the trading state to `to` (never lowers it). `None` when it had
    /// already fired; else the change (`from == to` when the state was already as strict).
    pub async fn risk_switch(
        &self,
        rule: &str,
        account: &str,
        trading_day: &str,
        to: TradingState,
        reason: &str,
    ) -> Result<Option<StateChange>, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::risk_switch(pg, rule, account, trading_day, to, reason));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let now = Timestamp::now();
        let first = sqlx::query(
            "INSERT INTO risk_switches (rule, account, trading_day, at) VALUES (?, ?, ?, ?)
             ON CONFLICT DO NOTHING",
        )
        .bind(rule)
        .bind(account)
        .bind(trading_day)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first {
            tx.commit().await?;
            return Ok(None);
        }
        let from = current_state(&mut tx)
            .await?
            .unwrap_or(TradingState::Active);
        let change = StateChange {
            from,
            to: from.max(to),
        };
        if change.changed() {
            write_state(&mut tx, change.to, now).await?;
            insert_action(
                &mut tx,
                now,
                ActionKind::TradingState,
                (Some(from), Some(change.to)),
                None,
                reason,
                ActionSource::Risk,
            )
            .await?;
        }
        let told = notice::risk_switch(rule, account, from, change.to, reason);
        outbox::enqueue(&mut tx, &told).await?;
        tx.commit().await?;
        self.outbox_changed();
        Ok(Some(change))
    }

    /// Records an action that is not a state change (a reload applied).
    pub async fn record_operator_action(
        &self,
        action: ActionKind,
        reason: &str,
        source: ActionSource,
    ) -> Result<(), StoreError> {
        let db =
            on_postgres!(self, pg => postgres::operator::record_action(pg, action, reason, source));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        insert_action(
            &mut tx,
            Timestamp::now(),
            action,
            (None, None),
            None,
            reason,
            source,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Cancels an active workflow on an operator's word, and records it; the refusal when it
    /// is unknown or already finished. A final state is never changed again, so a step of the
    /// workflow still in flight cannot bring it back.
    pub async fn cancel_workflow(
        &self,
        id: i64,
        reason: &str,
        source: ActionSource,
    ) -> Result<Result<WorkflowRecord, CancelRefusal>, StoreError> {
        let db =
            on_postgres!(self, pg => postgres::operator::cancel_workflow(pg, id, reason, source));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let now = Timestamp::now();
        let cancelled = super::workflows::cancel_active(&mut tx, id, reason, now).await?;
        let Some(cancelled) = cancelled else {
            let state: Option<super::WorkflowState> =
                sqlx::query_scalar("SELECT state FROM workflows WHERE id = ?")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.commit().await?;
            return Ok(Err(
                state.map_or(CancelRefusal::Unknown, CancelRefusal::Finished)
            ));
        };
        insert_action(
            &mut tx,
            now,
            ActionKind::CancelWorkflow,
            (None, None),
            Some(id),
            reason,
            source,
        )
        .await?;
        tx.commit().await?;
        self.outbox_changed();
        Ok(Ok(cancelled))
    }

    /// The newest `limit` operator actions, newest first.
    pub async fn operator_actions(&self, limit: u32) -> Result<Vec<OperatorAction>, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::actions(pg, limit));
        let mut reader = db.readers.acquire().await?;
        latest_actions(&mut reader, limit).await
    }

    /// Per position with a realized PnL change since `since`: its last mark before `since` and
    /// its last mark since (the daily-loss rule sums the differences per account). A position
    /// keeps one mark per whole second, the last change of that second (migration 0010), so
    /// the answer is exact for a `since` on a whole second, as a trading day's start is.
    pub async fn realized_pnl_movements(
        &self,
        since: Timestamp,
    ) -> Result<Vec<PnlMovement>, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::pnl_movements(pg, since));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(
            "WITH latest AS (
                 SELECT position_id, account, realized_pnl, MAX(id) AS id
                 FROM realized_pnl_marks WHERE at >= ?1 GROUP BY position_id
             ),
             opening AS (
                 SELECT position_id, realized_pnl, MAX(id) AS id
                 FROM realized_pnl_marks
                 WHERE at < ?1 AND position_id IN (SELECT position_id FROM latest)
                 GROUP BY position_id
             )
             SELECT latest.position_id, latest.account, latest.realized_pnl AS latest,
                    opening.realized_pnl AS opening
             FROM latest LEFT JOIN opening USING (position_id)
             ORDER BY latest.position_id",
        )
        .bind(since)
        .fetch_all(&mut *reader)
        .await?)
    }

    /// How many intents the workflows of `account` committed since `since` (of `operation`
    /// only, when given): the risk rules' counts of calls and of entries.
    pub async fn account_intents_since(
        &self,
        account: &str,
        operation: Option<&str>,
        since: Timestamp,
    ) -> Result<u32, StoreError> {
        let db = on_postgres!(self, pg => postgres::operator::account_intents_since(pg, account, operation, since));
        let mut reader = db.readers.acquire().await?;
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM intents
             JOIN workflows ON intents.workflow_id = CAST(workflows.id AS TEXT)
             WHERE workflows.account = ?1 AND intents.created_at >= ?2
               AND (?3 IS NULL OR intents.operation = ?3)",
        )
        .bind(account)
        .bind(since)
        .bind(operation)
        .fetch_one(&mut *reader)
        .await?;
        Ok(count_of(count))
    }
}

/// A row count as the risk rules read it.
pub(super) fn count_of(count: i64) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

async fn current_state(conn: &mut SqliteConnection) -> Result<Option<TradingState>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT state FROM trading_state WHERE id = 1")
            .fetch_optional(conn)
            .await?,
    )
}

async fn write_state(
    conn: &mut SqliteConnection,
    state: TradingState,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trading_state (id, state, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET state = ?1, updated_at = ?2",
    )
    .bind(state)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_action(
    conn: &mut SqliteConnection,
    at: Timestamp,
    action: ActionKind,
    (from, to): (Option<TradingState>, Option<TradingState>),
    workflow_id: Option<i64>,
    reason: &str,
    source: ActionSource,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO operator_actions (at, action, from_state, to_state, workflow_id, reason, source)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(action)
    .bind(from)
    .bind(to)
    .bind(workflow_id)
    .bind(reason)
    .bind(source)
    .execute(conn)
    .await?;
    Ok(())
}

/// The newest `limit` actions, newest first (also the `state` report's).
pub(super) async fn latest_actions(
    conn: &mut SqliteConnection,
    limit: u32,
) -> Result<Vec<OperatorAction>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, at, action, from_state, to_state, workflow_id, reason, source
         FROM operator_actions ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The stored trading state, inside a read transaction (the `state` report).
pub(super) async fn stored_state(
    conn: &mut SqliteConnection,
) -> Result<Option<TradingState>, StoreError> {
    current_state(conn).await
}
