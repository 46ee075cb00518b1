//! Positions and legs on PostgreSQL (see `store/positions.rs` for the rules).

use sqlx::PgConnection;

use super::{Postgres, execute_for_rows};
use crate::store::positions::{
    OPEN_POSITION_KEYS, OPEN_POSITIONS_ON, SET_SNAPSHOT, fold_legs, fold_positions,
    select_positions,
};
use crate::store::{
    LegRecord, LegUpdate, OpenPosition, PositionRecord, PositionUpdate, StoreError, Timestamp,
    found,
};

/// [`crate::store::Store::upsert_positions`].
pub(in crate::store) async fn upsert_positions(
    db: &Postgres,
    updates: &[PositionUpdate],
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    let rows: Vec<&PositionUpdate> = updates.iter().collect();
    upsert_rows(&mut write.tx, &rows, Timestamp::now()).await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::set_position_snapshot`].
pub(in crate::store) async fn set_snapshot(
    db: &Postgres,
    position_id: i64,
    snapshot: &serde_json::Value,
    taken_at: Timestamp,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    let updated = sqlx::query(SET_SNAPSHOT)
        .bind(position_id)
        .bind(sqlx::types::Json(snapshot))
        .bind(taken_at)
        .execute(&mut *write.tx)
        .await?
        .rows_affected();
    write.tx.commit().await?;
    found(updated, "position", position_id)
}

/// [`crate::store::Store::mark_position_closed`].
pub(in crate::store) async fn close_one(db: &Postgres, position_id: i64) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    let updated = close(&mut write.tx, &[position_id], Timestamp::now()).await?;
    write.tx.commit().await?;
    found(updated, "position", position_id)
}

/// [`crate::store::Store::position`].
pub(in crate::store) async fn get(
    db: &Postgres,
    position_id: i64,
) -> Result<Option<PositionRecord>, StoreError> {
    Ok(sqlx::query_as(select_positions!("WHERE position_id = $1"))
        .bind(position_id)
        .fetch_optional(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::open_positions`].
pub(in crate::store) async fn open(db: &Postgres) -> Result<Vec<PositionRecord>, StoreError> {
    Ok(sqlx::query_as(select_positions!(
        "WHERE state = 'open' ORDER BY position_id"
    ))
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::open_position_keys`].
pub(in crate::store) async fn open_keys(db: &Postgres) -> Result<Vec<OpenPosition>, StoreError> {
    Ok(sqlx::query_as(OPEN_POSITION_KEYS)
        .fetch_all(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::open_positions_on`].
pub(in crate::store) async fn open_on(
    db: &Postgres,
    account: &str,
    strategy_id: Option<i64>,
) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar(OPEN_POSITIONS_ON)
        .bind(account)
        .bind(strategy_id)
        .fetch_one(&mut *db.reader().await?)
        .await?;
    Ok(count.unsigned_abs())
}

/// [`crate::store::Store::monitored_positions`].
pub(in crate::store) async fn monitored(db: &Postgres) -> Result<Vec<PositionRecord>, StoreError> {
    of_monitored(&mut *db.reader().await?).await
}

/// [`crate::store::Store::legs`].
pub(in crate::store) async fn legs(
    db: &Postgres,
    position_id: i64,
) -> Result<Vec<LegRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT leg_id, position_id, name, status, qty, updated_at
         FROM legs WHERE position_id = $1 ORDER BY leg_id",
    )
    .bind(position_id)
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// Positions a monitor should run for, by id.
pub(super) async fn of_monitored(
    conn: &mut PgConnection,
) -> Result<Vec<PositionRecord>, StoreError> {
    Ok(
        sqlx::query_as(select_positions!("WHERE monitored ORDER BY position_id"))
            .fetch_all(conn)
            .await?,
    )
}

/// Close positions found closed outside the event stream; returns how many the store knew.
pub(super) async fn close(
    conn: &mut PgConnection,
    position_ids: &[i64],
    now: Timestamp,
) -> Result<u64, StoreError> {
    if position_ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE positions SET state = 'closed', monitored = false, updated_at = $1
         WHERE position_id = ANY($2)",
    )
    .bind(now)
    .bind(position_ids)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Insert or update positions, later updates winning; a closed position stays closed. The
/// batch is folded first ([`fold_positions`]): PostgreSQL updates a row once per statement.
pub(super) async fn upsert_rows(
    conn: &mut PgConnection,
    updates: &[&PositionUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    let folded = fold_positions(updates);
    execute_for_rows(
        conn,
        "INSERT INTO positions (position_id, strategy_id, account, name, state, last_status,
                                realized_pnl, monitored, updated_at)
         SELECT p.position_id, p.strategy_id, p.account, p.name, p.state, p.status,
                p.realized_pnl, p.state = 'open', $2
         FROM jsonb_to_recordset($1::jsonb) AS p(position_id bigint, strategy_id bigint,
             account text, name text, state text, status text, realized_pnl text)
         ON CONFLICT (position_id) DO UPDATE SET
             strategy_id = excluded.strategy_id,
             account = excluded.account,
             name = excluded.name,
             state = CASE WHEN positions.state = 'closed' THEN 'closed' ELSE excluded.state END,
             monitored = CASE WHEN positions.state = 'closed' THEN false
                              ELSE excluded.monitored END,
             last_status = excluded.last_status,
             realized_pnl = COALESCE(excluded.realized_pnl, positions.realized_pnl),
             updated_at = excluded.updated_at",
        &folded,
        now,
    )
    .await
}

/// Insert or update legs, later updates winning; a missing quantity keeps the last one. The
/// batch is folded first ([`fold_legs`]).
pub(super) async fn upsert_legs(
    conn: &mut PgConnection,
    updates: &[&LegUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    let folded = fold_legs(updates);
    execute_for_rows(
        conn,
        "INSERT INTO legs (leg_id, position_id, name, status, qty, updated_at)
         SELECT l.leg_id, l.position_id, l.name, l.status, l.qty, $2
         FROM jsonb_to_recordset($1::jsonb)
             AS l(leg_id bigint, position_id bigint, name text, status text, qty text)
         ON CONFLICT (leg_id) DO UPDATE SET
             position_id = excluded.position_id,
             name = excluded.name,
             status = excluded.status,
             qty = COALESCE(excluded.qty, legs.qty),
             updated_at = excluded.updated_at",
        &folded,
        now,
    )
    .await
}
