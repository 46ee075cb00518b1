//! Live orders and which intent sent them, so a retry never sends a second order.

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{ColumnIndex, Decode, FromRow, Row, SqliteConnection, Type};

use super::{
    Store, StoreError, Timestamp, begin_write, decimal_column, decimal_text, execute_for_rows,
    on_postgres, postgres,
};

/// An order's latest known facts, from an `OrderUpdateEvent` or a Control Hub read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderUpdate {
    /// The live order id.
    pub order_id: i64,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The broker account, when known (kept otherwise).
    pub account: Option<String>,
    /// The execution plan, when known (kept otherwise).
    pub exec_plan_id: Option<i64>,
    /// The leg group, when known (kept otherwise).
    pub leg_group_id: Option<i64>,
    /// The hub's order state word as received.
    pub state: String,
    /// Filled so far, when known (kept otherwise).
    #[serde(serialize_with = "decimal_text")]
    pub filled_qty: Option<Decimal>,
    /// Average fill price, when known (kept otherwise).
    #[serde(serialize_with = "decimal_text")]
    pub avg_fill_price: Option<Decimal>,
}

/// A stored order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderRecord {
    /// The live order id.
    pub order_id: i64,
    /// The intent that sent it, if this daemon sent it.
    pub intent_key: Option<String>,
    /// The execution plan.
    pub exec_plan_id: Option<i64>,
    /// The leg group.
    pub leg_group_id: Option<i64>,
    /// The broker account.
    pub account: Option<String>,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The last state word received; `None` while only the link to its intent is known.
    pub state: Option<String>,
    /// Filled so far.
    pub filled_qty: Option<Decimal>,
    /// Average fill price.
    pub avg_fill_price: Option<Decimal>,
    /// When this row last changed.
    pub updated_at: Timestamp,
}

/// Generic over the backend's row type: both keep the same columns.
impl<'r, R> FromRow<'r, R> for OrderRecord
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Timestamp: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            order_id: row.try_get("order_id")?,
            intent_key: row.try_get("intent_key")?,
            exec_plan_id: row.try_get("exec_plan_id")?,
            leg_group_id: row.try_get("leg_group_id")?,
            account: row.try_get("account")?,
            strategy_id: row.try_get("strategy_id")?,
            state: row.try_get("state")?,
            filled_qty: decimal_column(row, "filled_qty")?,
            avg_fill_price: decimal_column(row, "avg_fill_price")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// `SELECT` of every [`OrderRecord`] column, followed by the given clause.
macro_rules! select_orders {
    ($clause:literal) => {
        concat!(
            "SELECT order_id, intent_key, exec_plan_id, leg_group_id, account, strategy_id,
                    state, filled_qty, avg_fill_price, updated_at
             FROM orders ",
            $clause
        )
    };
}
pub(super) use select_orders;

impl Store {
    /// Record an order's state from a Control Hub read (reconciliation backstop).
    pub async fn upsert_order(&self, update: &OrderUpdate) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::orders::upsert_one(pg, update));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        upsert(&mut tx, &[update], Timestamp::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Remember that `intent_key` produced order `order_id` (from the SendOrder response or
    /// the idempotency record). Works whether or not an order update arrived first.
    pub async fn link_order_to_intent(
        &self,
        order_id: i64,
        intent_key: &str,
        strategy_id: i64,
    ) -> Result<(), StoreError> {
        let db =
            on_postgres!(self, pg => postgres::orders::link(pg, order_id, intent_key, strategy_id));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        sqlx::query(
            "INSERT INTO orders (order_id, intent_key, strategy_id, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (order_id) DO UPDATE SET
                 intent_key = excluded.intent_key,
                 updated_at = excluded.updated_at",
        )
        .bind(order_id)
        .bind(intent_key)
        .bind(strategy_id)
        .bind(Timestamp::now())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// One order by id.
    pub async fn order(&self, order_id: i64) -> Result<Option<OrderRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::orders::get(pg, order_id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_orders!("WHERE order_id = ?"))
            .bind(order_id)
            .fetch_optional(&mut *reader)
            .await?)
    }

    /// Orders whose outcome is not known to be final (no state yet, or one other than
    /// `Filled`, `Cancelled`, `Rejected`, `Expired`), by id: what a hole in the event history
    /// may have moved on.
    pub async fn unsettled_orders(&self) -> Result<Vec<OrderRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::orders::unsettled(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_orders!(
            "WHERE state IS NULL OR state NOT IN ('Filled', 'Cancelled', 'Rejected', 'Expired')
             ORDER BY order_id"
        ))
        .fetch_all(&mut *reader)
        .await?)
    }

    /// The orders an intent produced, by id.
    pub async fn orders_for_intent(
        &self,
        intent_key: &str,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::orders::for_intent(pg, intent_key));
        let mut reader = db.readers.acquire().await?;
        Ok(
            sqlx::query_as(select_orders!("WHERE intent_key = ? ORDER BY order_id"))
                .bind(intent_key)
                .fetch_all(&mut *reader)
                .await?,
        )
    }

    /// The orders of one leg group of a plan, as order updates reported them (for an execution
    /// whose answer named no order).
    pub async fn orders_of_leg_group(
        &self,
        exec_plan_id: i64,
        leg_group_id: i64,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::orders::of_leg_group(pg, exec_plan_id, leg_group_id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_orders!(
            "WHERE exec_plan_id = ? AND leg_group_id = ? ORDER BY order_id"
        ))
        .bind(exec_plan_id)
        .bind(leg_group_id)
        .fetch_all(&mut *reader)
        .await?)
    }
}

/// Insert or update orders, later updates of an order winning; fields an update does not carry
/// keep their last value, and the link to an intent is never overwritten by an event.
pub(super) async fn upsert(
    conn: &mut SqliteConnection,
    updates: &[&OrderUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    execute_for_rows(
        conn,
        "INSERT INTO orders (order_id, exec_plan_id, leg_group_id, account, strategy_id, state,
                             filled_qty, avg_fill_price, updated_at)
         SELECT o.value ->> 'order_id', o.value ->> 'exec_plan_id', o.value ->> 'leg_group_id',
                o.value ->> 'account', o.value ->> 'strategy_id', o.value ->> 'state',
                o.value ->> 'filled_qty', o.value ->> 'avg_fill_price', ?2
         FROM jsonb_each(?1) AS o WHERE true ORDER BY o.key
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
        now,
    )
    .await
}
