//! Signals on PostgreSQL (see `store/signals.rs` for the rules).

use sqlx::PgConnection;

use super::{Postgres, upsert_in_rounds};
use crate::store::signals::{keyed_rows, reassertion_is_newer, select_signals, signal_update_set};
use crate::store::{SignalRecord, SignalUpdate, StoreError, Timestamp};

/// The PostgreSQL signal upsert, with the condition under which an update replaces a stored
/// state.
macro_rules! upsert_signals {
    ($condition:expr) => {
        concat!(
            "INSERT INTO signals
                 (signal_key, kind, state, strategy_id, position_id, account, condition, instance,
                  payload, event_key, event_seq_id, event_time, updated_at)
             SELECT s.signal_key, s.kind, s.state, s.strategy_id, s.position_id, s.account,
                    s.condition, s.event_key, s.payload, s.event_key, s.event_seq_id,
                    s.event_time, $2
             FROM jsonb_to_recordset($1::jsonb) AS s(signal_key text, kind text, state text,
                 strategy_id bigint, position_id bigint, account text, condition text,
                 payload jsonb, event_key text, event_seq_id bigint, event_time bigint)
             ON CONFLICT (signal_key) DO UPDATE SET ",
            signal_update_set!(),
            " WHERE ",
            $condition
        )
    };
}

/// [`crate::store::Store::signals`].
pub(in crate::store) async fn all(db: &Postgres) -> Result<Vec<SignalRecord>, StoreError> {
    Ok(sqlx::query_as(select_signals!("ORDER BY signal_key"))
        .fetch_all(&mut *db.reader().await?)
        .await?)
}

/// [`crate::store::Store::signal`].
pub(in crate::store) async fn get(
    db: &Postgres,
    signal_key: &str,
) -> Result<Option<SignalRecord>, StoreError> {
    Ok(sqlx::query_as(select_signals!("WHERE signal_key = $1"))
        .bind(signal_key)
        .fetch_optional(&mut *db.reader().await?)
        .await?)
}

/// Store signals' new states: those in sequence, then the re-assertions (as in SQLite).
pub(super) async fn upsert(
    conn: &mut PgConnection,
    updates: &[(&SignalUpdate, &str)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let (reasserted, sequenced) = keyed_rows(updates);
    upsert_in_rounds(
        &mut *conn,
        upsert_signals!("true"),
        &sequenced,
        |row| row.signal_key.clone(),
        now,
    )
    .await?;
    upsert_in_rounds(
        conn,
        upsert_signals!(reassertion_is_newer!()),
        &reasserted,
        |row| row.signal_key.clone(),
        now,
    )
    .await
}
