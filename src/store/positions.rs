//! Positions and legs this daemon knows about, and which positions it monitors.

use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::types::Json;
use sqlx::{ColumnIndex, Decode, FromRow, Row, SqliteConnection, Type};

use super::fold::fold;
use super::{
    Store, StoreError, Timestamp, begin_write, decimal_column, decimal_text, execute_for_rows,
    execute_values, found, json_text, on_postgres, postgres,
};

/// Whether a position is still open. Closed is final: a position id never reopens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum PositionState {
    /// Live: has legs, is monitored.
    Open,
    /// Exited.
    Closed,
}

impl PositionState {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            PositionState::Open => "open",
            PositionState::Closed => "closed",
        }
    }
}

/// A position's latest known facts, from a `PositionUpdateEvent` or a Control Hub listing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionUpdate {
    /// The live position id.
    pub position_id: i64,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The broker account.
    pub account: String,
    /// The position's name.
    pub name: String,
    /// Open or closed (the event pump maps `PositionStatus::Closed` to closed).
    pub state: PositionState,
    /// The hub's status word as received (`Created`, `Adjusted`, `RealizedPnLChanged`…).
    pub status: String,
    /// Realized PnL, when the event carries it (kept otherwise).
    #[serde(serialize_with = "decimal_text")]
    pub realized_pnl: Option<Decimal>,
}

/// A leg's latest known facts, from a `LegUpdateEvent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegUpdate {
    /// The live leg id.
    pub leg_id: i64,
    /// The position it belongs to (which may not be known to this daemon).
    pub position_id: i64,
    /// The leg's name.
    pub name: String,
    /// The hub's status word as received.
    pub status: String,
    /// Current signed quantity, when the event carries it (kept otherwise).
    #[serde(serialize_with = "decimal_text")]
    pub qty: Option<Decimal>,
}

/// A stored position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionRecord {
    /// The live position id.
    pub position_id: i64,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The broker account.
    pub account: String,
    /// The position's name.
    pub name: String,
    /// Open or closed.
    pub state: PositionState,
    /// The last status word received.
    pub last_status: Option<String>,
    /// The last realized PnL received.
    pub realized_pnl: Option<Decimal>,
    /// Whether this daemon runs a monitor for it (open positions are monitored).
    pub monitored: bool,
    /// The last Data Hub snapshot, as received.
    pub last_snapshot: Option<serde_json::Value>,
    /// When that snapshot was taken.
    pub snapshot_at: Option<Timestamp>,
    /// When this row last changed.
    pub updated_at: Timestamp,
}

/// An open position as the daemon's own tasks need it (which monitors to run, how many
/// positions a strategy or account holds): no snapshot to decode, so re-reading every open
/// position at each event batch costs the ids, not their market data.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OpenPosition {
    /// The live position id.
    pub position_id: i64,
    /// The strategy it belongs to.
    pub strategy_id: i64,
    /// The broker account.
    pub account: String,
}

/// A stored leg.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegRecord {
    /// The live leg id.
    pub leg_id: i64,
    /// The position it belongs to.
    pub position_id: i64,
    /// The leg's name.
    pub name: String,
    /// The last status word received.
    pub status: String,
    /// The last signed quantity received.
    pub qty: Option<Decimal>,
    /// When this row last changed.
    pub updated_at: Timestamp,
}

/// Generic over the backend's row type: both keep the same columns.
impl<'r, R> FromRow<'r, R> for PositionRecord
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Timestamp: Decode<'r, R::Database> + Type<R::Database>,
    PositionState: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
    Json<serde_json::Value>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            position_id: row.try_get("position_id")?,
            strategy_id: row.try_get("strategy_id")?,
            account: row.try_get("account")?,
            name: row.try_get("name")?,
            state: row.try_get("state")?,
            last_status: row.try_get("last_status")?,
            realized_pnl: decimal_column(row, "realized_pnl")?,
            monitored: row.try_get("monitored")?,
            last_snapshot: row
                .try_get::<Option<Json<serde_json::Value>>, _>("last_snapshot")?
                .map(|Json(snapshot)| snapshot),
            snapshot_at: row.try_get("snapshot_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// Generic over the backend's row type: both keep the same columns.
impl<'r, R> FromRow<'r, R> for LegRecord
where
    R: Row,
    &'r str: ColumnIndex<R>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Timestamp: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Self {
            leg_id: row.try_get("leg_id")?,
            position_id: row.try_get("position_id")?,
            name: row.try_get("name")?,
            status: row.try_get("status")?,
            qty: decimal_column(row, "qty")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// `SELECT` of every [`PositionRecord`] column, followed by the given clause (which names
/// `position_id` unqualified: the join's one column of that name).
macro_rules! select_positions {
    ($clause:literal) => {
        concat!(
            "SELECT position_id, strategy_id, account, name, state, last_status, realized_pnl,
                    monitored, snapshot AS last_snapshot, taken_at AS snapshot_at, updated_at
             FROM positions LEFT JOIN position_snapshots USING (position_id) ",
            $clause
        )
    };
}
pub(super) use select_positions;

/// The [`OpenPosition`]s, by id (the same text in both backends).
pub(super) const OPEN_POSITION_KEYS: &str = "SELECT position_id, strategy_id, account FROM positions WHERE state = 'open' ORDER BY position_id";

/// Keep snapshot `$2` taken at `$3` of position `$1`, if the position is known (the same text
/// in both backends).
pub(super) const SET_SNAPSHOT: &str =
    "INSERT INTO position_snapshots (position_id, snapshot, taken_at)
     SELECT position_id, $2, $3 FROM positions WHERE position_id = $1
     ON CONFLICT (position_id) DO UPDATE SET
         snapshot = excluded.snapshot, taken_at = excluded.taken_at";

/// How many positions are open on account `$1`, of strategy `$2` unless it is NULL.
pub(super) const OPEN_POSITIONS_ON: &str = "SELECT count(*) FROM positions
     WHERE state = 'open' AND account = $1 AND ($2 IS NULL OR strategy_id = $2)";

impl Store {
    /// Record positions from a Control Hub listing (startup bootstrap, resync), in one
    /// transaction. A closed position stays closed.
    pub async fn upsert_positions(&self, updates: &[PositionUpdate]) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::upsert_positions(pg, updates));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let rows: Vec<&PositionUpdate> = updates.iter().collect();
        upsert_positions(&mut tx, &rows, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Keep the latest Data Hub snapshot of a position, to resume from after a restart.
    pub async fn set_position_snapshot(
        &self,
        position_id: i64,
        snapshot: &serde_json::Value,
        taken_at: Timestamp,
    ) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::set_snapshot(pg, position_id, snapshot, taken_at));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let updated = sqlx::query(SET_SNAPSHOT)
            .bind(position_id)
            .bind(snapshot.to_string())
            .bind(taken_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        found(updated, "position", position_id)
    }

    /// Close a position found closed outside the event stream (a resync); stops its monitoring.
    pub async fn mark_position_closed(&self, position_id: i64) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::close_one(pg, position_id));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let updated = close(&mut tx, &[position_id], Timestamp::now()).await?;
        tx.commit().await?;
        found(updated, "position", position_id)
    }

    /// One position by id.
    pub async fn position(&self, position_id: i64) -> Result<Option<PositionRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::get(pg, position_id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_positions!("WHERE position_id = ?"))
            .bind(position_id)
            .fetch_optional(&mut *reader)
            .await?)
    }

    /// Every open position, by id.
    pub async fn open_positions(&self) -> Result<Vec<PositionRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::open(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(select_positions!(
            "WHERE state = 'open' ORDER BY position_id"
        ))
        .fetch_all(&mut *reader)
        .await?)
    }

    /// Every open position's id, strategy and account, by id.
    pub async fn open_position_keys(&self) -> Result<Vec<OpenPosition>, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::open_keys(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(OPEN_POSITION_KEYS)
            .fetch_all(&mut *reader)
            .await?)
    }

    /// How many positions are open on `account` (of `strategy_id` only, when given): the
    /// admission and risk rules' count, without reading every open position.
    pub async fn open_positions_on(
        &self,
        account: &str,
        strategy_id: Option<i64>,
    ) -> Result<u64, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::open_on(pg, account, strategy_id));
        let mut reader = db.readers.acquire().await?;
        let count: i64 = sqlx::query_scalar(OPEN_POSITIONS_ON)
            .bind(account)
            .bind(strategy_id)
            .fetch_one(&mut *reader)
            .await?;
        Ok(count.unsigned_abs())
    }

    /// Every position a monitor should run for, by id.
    pub async fn monitored_positions(&self) -> Result<Vec<PositionRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::monitored(pg));
        let mut reader = db.readers.acquire().await?;
        monitored(&mut reader).await
    }

    /// The legs of a position, by id.
    pub async fn legs(&self, position_id: i64) -> Result<Vec<LegRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::positions::legs(pg, position_id));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT leg_id, position_id, name, status, qty, updated_at
             FROM legs WHERE position_id = ? ORDER BY leg_id",
        )
        .bind(position_id)
        .fetch_all(&mut *reader)
        .await?)
    }
}

/// Positions a monitor should run for, by id.
pub(super) async fn monitored(
    conn: &mut SqliteConnection,
) -> Result<Vec<PositionRecord>, StoreError> {
    Ok(sqlx::query_as(select_positions!(
        "WHERE monitored = 1 ORDER BY position_id"
    ))
    .fetch_all(conn)
    .await?)
}

/// Close positions found closed outside the event stream and stop monitoring them; returns how
/// many the store knew.
pub(super) async fn close(
    conn: &mut SqliteConnection,
    position_ids: &[i64],
    now: Timestamp,
) -> Result<u64, StoreError> {
    if position_ids.is_empty() {
        return Ok(0);
    }
    Ok(sqlx::query(
        "UPDATE positions SET state = 'closed', monitored = 0, updated_at = ?
         WHERE position_id IN (SELECT value FROM json_each(?))",
    )
    .bind(now)
    .bind(json_text(position_ids)?)
    .execute(conn)
    .await?
    .rows_affected())
}

/// A batch of position updates as one row per position, each what applying its updates in
/// order leaves: the last update's fields, closed once any update closed it, the last realized
/// PnL given. Every update of a batch is committed at the same instant, so the realized PnL
/// marks of the ones folded away would have been shadowed by the last one (the daily-loss rule
/// reads the last mark of each position).
pub(super) fn fold_positions(updates: &[&PositionUpdate]) -> Vec<PositionUpdate> {
    fold(
        updates,
        |update| update.position_id,
        |folded, later| {
            let closed = folded.state == PositionState::Closed;
            let realized_pnl = later.realized_pnl.or(folded.realized_pnl);
            *folded = later.clone();
            if closed {
                folded.state = PositionState::Closed;
            }
            folded.realized_pnl = realized_pnl;
        },
    )
}

/// A batch of leg updates as one row per leg: the last update's fields, the last quantity given.
pub(super) fn fold_legs(updates: &[&LegUpdate]) -> Vec<LegUpdate> {
    fold(
        updates,
        |update| update.leg_id,
        |folded, later| {
            let qty = later.qty.or(folded.qty);
            *folded = later.clone();
            folded.qty = qty;
        },
    )
}

/// Insert or update positions, later updates winning. A closed position stays closed (and
/// unmonitored): a late `RealizedPnLChanged` after `Closed` must not restart its monitor. The
/// batch is folded first ([`fold_positions`]): one row write per position instead of one per
/// event, and at most one realized PnL mark per position and second (the table's trigger).
pub(super) async fn upsert_positions(
    conn: &mut SqliteConnection,
    updates: &[&PositionUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    execute_values(
        conn,
        "INSERT INTO positions (position_id, strategy_id, account, name, state, last_status,
                                realized_pnl, monitored, updated_at)",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?)",
        " ON CONFLICT (position_id) DO UPDATE SET
             strategy_id = excluded.strategy_id,
             account = excluded.account,
             name = excluded.name,
             state = CASE WHEN positions.state = 'closed' THEN 'closed' ELSE excluded.state END,
             monitored = CASE WHEN positions.state = 'closed' THEN 0 ELSE excluded.monitored END,
             last_status = excluded.last_status,
             realized_pnl = COALESCE(excluded.realized_pnl, positions.realized_pnl),
             updated_at = excluded.updated_at",
        &fold_positions(updates),
        |query, row| {
            query
                .bind(row.position_id)
                .bind(row.strategy_id)
                .bind(row.account.as_str())
                .bind(row.name.as_str())
                .bind(row.state.as_str())
                .bind(row.status.as_str())
                .bind(row.realized_pnl.map(|pnl| pnl.to_string()))
                .bind(row.state == PositionState::Open)
                .bind(now)
        },
    )
    .await
}

/// Insert or update legs, later updates winning; a missing quantity keeps the last one. The
/// batch is folded first ([`fold_legs`]).
pub(super) async fn upsert_legs(
    conn: &mut SqliteConnection,
    updates: &[&LegUpdate],
    now: Timestamp,
) -> Result<(), StoreError> {
    execute_for_rows(
        conn,
        "INSERT INTO legs (leg_id, position_id, name, status, qty, updated_at)
         SELECT l.value ->> 'leg_id', l.value ->> 'position_id', l.value ->> 'name',
                l.value ->> 'status', l.value ->> 'qty', ?2
         FROM jsonb_each(?1) AS l WHERE true ORDER BY l.key
         ON CONFLICT (leg_id) DO UPDATE SET
             position_id = excluded.position_id,
             name = excluded.name,
             status = excluded.status,
             qty = COALESCE(excluded.qty, legs.qty),
             updated_at = excluded.updated_at",
        &fold_legs(updates),
        now,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(position_id: i64, state: PositionState, pnl: Option<i64>) -> PositionUpdate {
        PositionUpdate {
            position_id,
            strategy_id: 7,
            account: "acct".into(),
            name: format!("p{position_id}"),
            state,
            status: format!("{state:?}"),
            realized_pnl: pnl.map(Decimal::from),
        }
    }

    #[test]
    fn a_folded_position_is_its_last_update_closed_once_closed_with_the_last_pnl_given() {
        let updates = [
            update(1, PositionState::Open, Some(5)),
            update(2, PositionState::Open, Some(1)),
            update(1, PositionState::Closed, Some(8)),
            update(1, PositionState::Open, None),
            update(2, PositionState::Open, Some(3)),
        ];
        let refs: Vec<&PositionUpdate> = updates.iter().collect();
        let folded = fold_positions(&refs);
        assert_eq!(folded.len(), 2);
        assert_eq!(folded[0].position_id, 1);
        assert_eq!(folded[0].state, PositionState::Closed);
        assert_eq!(folded[0].status, "Open");
        assert_eq!(folded[0].realized_pnl, Some(Decimal::from(8)));
        assert_eq!(folded[1], updates[4]);
    }

    #[test]
    fn a_folded_leg_keeps_the_last_quantity_given() {
        let leg = |status: &str, qty: Option<i64>| LegUpdate {
            leg_id: 3,
            position_id: 1,
            name: "put".into(),
            status: status.into(),
            qty: qty.map(Decimal::from),
        };
        let updates = [leg("Opened", Some(-1)), leg("Filled", None)];
        let refs: Vec<&LegUpdate> = updates.iter().collect();
        assert_eq!(fold_legs(&refs), vec![leg("Filled", Some(-1))]);
    }
}
