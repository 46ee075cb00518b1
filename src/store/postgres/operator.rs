//! Operator control on PostgreSQL (see `store/operator.rs` for the rules): every write is one
//! fenced transaction, so a standby or a fenced-off leader changes no trading state.

use sqlx::PgConnection;

use super::{Postgres, workflows};
use crate::notifications::notice;
use crate::store::operator::count_of;
use crate::store::{
    ActionKind, ActionSource, CancelRefusal, OperatorAction, PnlMovement, StateChange, StoreError,
    Timestamp, TradingState, WorkflowRecord, WorkflowState,
};

/// [`crate::store::Store::trading_state`].
pub(in crate::store) async fn trading_state(
    db: &Postgres,
) -> Result<Option<TradingState>, StoreError> {
    stored_state(&mut *db.reader().await?).await
}

/// [`crate::store::Store::trading_state_or_init`].
pub(in crate::store) async fn trading_state_or_init(
    db: &Postgres,
    initial: TradingState,
) -> Result<TradingState, StoreError> {
    let mut write = db.begin_write().await?;
    if let Some(state) = stored_state(&mut write.tx).await? {
        write.tx.commit().await?;
        return Ok(state);
    }
    let now = Timestamp::now();
    write_state(&mut write.tx, initial, now).await?;
    insert_action(
        &mut write.tx,
        now,
        ActionKind::TradingState,
        (None, Some(initial)),
        None,
        "automation.initial_state on a database with no trading state",
        ActionSource::Config,
    )
    .await?;
    write.tx.commit().await?;
    Ok(initial)
}

/// [`crate::store::Store::set_trading_state`].
pub(in crate::store) async fn set_trading_state(
    db: &Postgres,
    to: TradingState,
    reason: &str,
    source: ActionSource,
) -> Result<StateChange, StoreError> {
    let mut write = db.begin_write().await?;
    let from = stored_state(&mut write.tx)
        .await?
        .unwrap_or(TradingState::Active);
    let change = StateChange { from, to };
    if change.changed() {
        let now = Timestamp::now();
        write_state(&mut write.tx, to, now).await?;
        insert_action(
            &mut write.tx,
            now,
            ActionKind::TradingState,
            (Some(from), Some(to)),
            None,
            reason,
            source,
        )
        .await?;
        write
            .notify(&notice::trading_state(from, to, reason, source.as_str()))
            .await?;
    }
    write.commit().await?;
    Ok(change)
}

/// [`crate::store::Store::risk_switch`].
pub(in crate::store) async fn risk_switch(
    db: &Postgres,
    rule: &str,
    account: &str,
    trading_day: &str,
    to: TradingState,
    reason: &str,
) -> Result<Option<StateChange>, StoreError> {
    let mut write = db.begin_write().await?;
    let now = Timestamp::now();
    let first = sqlx::query(
        "INSERT INTO risk_switches (rule, account, trading_day, at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
    )
    .bind(rule)
    .bind(account)
    .bind(trading_day)
    .bind(now)
    .execute(&mut *write.tx)
    .await?
    .rows_affected()
        == 1;
    if !first {
        write.tx.commit().await?;
        return Ok(None);
    }
    let from = stored_state(&mut write.tx)
        .await?
        .unwrap_or(TradingState::Active);
    let change = StateChange {
        from,
        to: from.max(to),
    };
    if change.changed() {
        write_state(&mut write.tx, change.to, now).await?;
        insert_action(
            &mut write.tx,
            now,
            ActionKind::TradingState,
            (Some(from), Some(change.to)),
            None,
            reason,
            ActionSource::Risk,
        )
        .await?;
    }
    write
        .notify(&notice::risk_switch(rule, account, from, change.to, reason))
        .await?;
    write.commit().await?;
    Ok(Some(change))
}

/// [`crate::store::Store::record_operator_action`].
pub(in crate::store) async fn record_action(
    db: &Postgres,
    action: ActionKind,
    reason: &str,
    source: ActionSource,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    insert_action(
        &mut write.tx,
        Timestamp::now(),
        action,
        (None, None),
        None,
        reason,
        source,
    )
    .await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::cancel_workflow`].
pub(in crate::store) async fn cancel_workflow(
    db: &Postgres,
    id: i64,
    reason: &str,
    source: ActionSource,
) -> Result<Result<WorkflowRecord, CancelRefusal>, StoreError> {
    let mut write = db.begin_write().await?;
    let now = Timestamp::now();
    let cancelled = workflows::cancel_active(&mut write, id, reason, now).await?;
    let Some(cancelled) = cancelled else {
        let state: Option<WorkflowState> =
            sqlx::query_scalar("SELECT state FROM workflows WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *write.tx)
                .await?;
        write.tx.commit().await?;
        return Ok(Err(
            state.map_or(CancelRefusal::Unknown, CancelRefusal::Finished)
        ));
    };
    insert_action(
        &mut write.tx,
        now,
        ActionKind::CancelWorkflow,
        (None, None),
        Some(id),
        reason,
        source,
    )
    .await?;
    write.commit().await?;
    Ok(Ok(cancelled))
}

/// [`crate::store::Store::operator_actions`].
pub(in crate::store) async fn actions(
    db: &Postgres,
    limit: u32,
) -> Result<Vec<OperatorAction>, StoreError> {
    latest_actions(&mut *db.reader().await?, limit).await
}

/// [`crate::store::Store::realized_pnl_movements`]: per position, the last mark since `since`
/// and the last one before it.
pub(in crate::store) async fn pnl_movements(
    db: &Postgres,
    since: Timestamp,
) -> Result<Vec<PnlMovement>, StoreError> {
    Ok(sqlx::query_as(
        "WITH latest AS (
             SELECT DISTINCT ON (position_id) position_id, account, realized_pnl
             FROM realized_pnl_marks WHERE at >= $1 ORDER BY position_id, id DESC
         ),
         opening AS (
             SELECT DISTINCT ON (position_id) position_id, realized_pnl
             FROM realized_pnl_marks
             WHERE at < $1 AND position_id IN (SELECT position_id FROM latest)
             ORDER BY position_id, id DESC
         )
         SELECT latest.position_id, latest.account, latest.realized_pnl AS latest,
                opening.realized_pnl AS opening
         FROM latest LEFT JOIN opening USING (position_id)
         ORDER BY latest.position_id",
    )
    .bind(since)
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::account_intents_since`].
pub(in crate::store) async fn account_intents_since(
    db: &Postgres,
    account: &str,
    operation: Option<&str>,
    since: Timestamp,
) -> Result<u32, StoreError> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM intents
         JOIN workflows ON intents.workflow_id = workflows.id::text
         WHERE workflows.account = $1 AND intents.created_at >= $2
           AND ($3::text IS NULL OR intents.operation = $3)",
    )
    .bind(account)
    .bind(since)
    .bind(operation)
    .fetch_one(&mut *db.reader().await?)
    .await?;
    Ok(count_of(count))
}

/// The stored trading state (also the `state` report's).
pub(super) async fn stored_state(
    conn: &mut PgConnection,
) -> Result<Option<TradingState>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT state FROM trading_state WHERE id = 1")
            .fetch_optional(conn)
            .await?,
    )
}

async fn write_state(
    conn: &mut PgConnection,
    state: TradingState,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO trading_state (id, state, updated_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
    )
    .bind(state)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

async fn insert_action(
    conn: &mut PgConnection,
    at: Timestamp,
    action: ActionKind,
    (from, to): (Option<TradingState>, Option<TradingState>),
    workflow_id: Option<i64>,
    reason: &str,
    source: ActionSource,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO operator_actions (at, action, from_state, to_state, workflow_id, reason, source)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    conn: &mut PgConnection,
    limit: u32,
) -> Result<Vec<OperatorAction>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, at, action, from_state, to_state, workflow_id, reason, source
         FROM operator_actions ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?)
}
