//! Orders on PostgreSQL (see `store/orders.rs` for the rules).

use sqlx::PgConnection;

use super::{Postgres, upsert_in_rounds};
use crate::store::orders::select_orders;
use crate::store::{OrderRecord, OrderUpdate, StoreError, Timestamp};

/// [`crate::store::Store::upsert_order`].
pub(in crate::store) async fn upsert_one(
    db: &Postgres,
    update: &OrderUpdate,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    upsert(&mut write.tx, &[update], Timestamp::now()).await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::link_order_to_intent`].
pub(in crate::store) async fn link(
    db: &Postgres,
    order_id: i64,
    intent_key: &str,
    strategy_id: i64,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO orders (order_id, intent_key, strategy_id, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (order_id) DO UPDATE SET
             intent_key = excluded.intent_key,
             updated_at = excluded.updated_at",
    )
    .bind(order_id)
    .bind(intent_key)
    .bind(strategy_id)
    .bind(Timestamp::now())
    .execute(&mut *write.tx)
    .await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::order`].
pub(in crate::store) async fn get(
    db: &Postgres,
    order_id: i64,
) -> Result<Option<OrderRecord>, StoreError> {
    Ok(sqlx::query_as(select_orders!("WHERE order_id = $1"))
        .bind(order_id)
        .fetch_optional(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::unsettled_orders`].
pub(in crate::store) async fn unsettled(db: &Postgres) -> Result<Vec<OrderRecord>, StoreError> {
    Ok(sqlx::query_as(select_orders!(
        "WHERE state IS NULL OR state NOT IN ('Filled', 'Cancelled', 'Rejected', 'Expired')
         ORDER BY order_id"
    ))
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::orders_for_intent`].
pub(in crate::store) async fn for_intent(
    db: &Postgres,
    intent_key: &str,
) -> Result<Vec<OrderRecord>, StoreError> {
    Ok(
        sqlx::query_as(select_orders!("WHERE intent_key = $1 ORDER BY order_id"))
            .bind(intent_key)
            .fetch_all(&mut *db.reader().await?)
            .await?,
    )
}

/// [`crate::store::Store::orders_of_leg_group`].
pub(in crate::store) async fn of_leg_group(
    db: &Postgres,
    exec_plan_id: i64,
    leg_group_id: i64,
) -> Result<Vec<OrderRecord>, StoreError> {
    Ok(sqlx::query_as(select_orders!(
        "WHERE exec_plan_id = $1 AND leg_group_id = $2 ORDER BY order_id"
    ))
    .bind(exec_plan_id)
    .bind(leg_group_id)
    .fetch_all(&mut *db.reader().await?)
    .await?)
}

/// Insert or update orders, later updates of an order winning; the link to an intent is never
/// overwritten by an event.
pub(super) async fn upsert(
    conn: &mut PgConnection,
    updates: &[&OrderUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    upsert_in_rounds(
        conn,
        "INSERT INTO orders (order_id, exec_plan_id, leg_group_id, account, strategy_id, state,
                             filled_qty, avg_fill_price, updated_at)
         SELECT o.order_id, o.exec_plan_id, o.leg_group_id, o.account, o.strategy_id, o.state,
                o.filled_qty, o.avg_fill_price, $2
         FROM jsonb_to_recordset($1::jsonb) AS o(order_id bigint, exec_plan_id bigint,
             leg_group_id bigint, account text, strategy_id bigint, state text,
             filled_qty text, avg_fill_price text)
         ON CONFLICT (order_id) DO UPDATE SET
             exec_plan_id = COALESCE(excluded.exec_plan_id, orders.exec_plan_id),
             leg_group_id = COALESCE(excluded.leg_group_id, orders.leg_group_id),
             account = COALESCE(excluded.account, orders.account),
             strategy_id = excluded.strategy_id,
             state = excluded.state,
             filled_qty = COALESCE(excluded.filled_qty, orders.filled_qty),
             avg_fill_price = COALESCE(excluded.avg_fill_price, orders.avg_fill_price),
             updated_at = excluded.updated_at",
        updates,
        |update| update.order_id,
        now,
    )
    .await
}
