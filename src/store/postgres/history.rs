//! Holes in the event history on PostgreSQL (see `store/history.rs` for the rules).

use sqlx::PgConnection;

use super::events::write_cursor;
use super::{Postgres, Write, execute_for_rows, orders, positions};
use crate::store::history::{GapRow, resync_summary, unconfirmed_keys};
use crate::store::{
    GapResolution, HistoryGap, HistoryGapRecord, LegUpdate, OrderUpdate, PositionUpdate, Resync,
    ResyncSummary, StoreError, Timestamp,
};

/// [`crate::store::Store::resync_after_history_gap`].
pub(in crate::store) async fn resync(
    db: &Postgres,
    gap: &HistoryGap,
    resync: &Resync,
) -> Result<ResyncSummary, StoreError> {
    let Write {
        mut tx, mut dedupe, ..
    } = db.begin_write().await?;
    let committed = async {
        let now = Timestamp::now();
        let open: Vec<&PositionUpdate> = resync.open_positions.iter().collect();
        positions::upsert_rows(&mut tx, &open, now).await?;
        positions::close(&mut tx, &resync.closed_positions, now).await?;
        let legs: Vec<&LegUpdate> = resync.legs.iter().collect();
        positions::upsert_legs(&mut tx, &legs, now).await?;
        let orders: Vec<&OrderUpdate> = resync.orders.iter().collect();
        orders::upsert(&mut tx, &orders, now).await?;
        let (signals_unconfirmed, forgotten) = unconfirm_signals(&mut tx, now).await?;
        write_cursor(&mut tx, gap.to, now).await?;
        let summary = resync_summary(gap, resync, signals_unconfirmed);
        insert_gap(&mut tx, gap, GapResolution::Resynced, Some(&summary), now).await?;
        tx.commit().await?;
        Ok((summary, forgotten))
    }
    .await;
    dedupe.follow(committed, |index, (summary, forgotten)| {
        index.forget(forgotten.iter().map(String::as_str));
        summary
    })
}

/// [`crate::store::Store::record_history_gap_stop`].
pub(in crate::store) async fn record_stop(
    db: &Postgres,
    gap: &HistoryGap,
) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    insert_gap(
        &mut write.tx,
        gap,
        GapResolution::Stopped,
        None,
        Timestamp::now(),
    )
    .await?;
    write.tx.commit().await?;
    Ok(())
}

/// [`crate::store::Store::history_gaps`].
pub(in crate::store) async fn all(db: &Postgres) -> Result<Vec<HistoryGapRecord>, StoreError> {
    of_all(&mut *db.reader().await?).await
}

/// Every recorded hole, oldest first.
pub(super) async fn of_all(conn: &mut PgConnection) -> Result<Vec<HistoryGapRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, from_seq, to_seq, to_seq - from_seq + 1 AS events, form, detected_at,
                resolution, detail
         FROM history_gaps ORDER BY id",
    )
    .fetch_all(conn)
    .await?)
}

/// Sets Off every signal held On that no running workflow acts on, and deletes the dedupe keys
/// of the events behind it. Returns the signals and the keys.
async fn unconfirm_signals(
    conn: &mut PgConnection,
    now: Timestamp,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let unconfirmed: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "UPDATE signals SET state = 'Off', event_seq_id = NULL, event_time = NULL, updated_at = $1
         WHERE state = 'On' AND NOT EXISTS (
             SELECT 1 FROM workflows w
             WHERE w.signal_key = signals.signal_key AND w.signal_instance = signals.instance
               AND w.state IN ('requested', 'preparing', 'prepared', 'executing'))
         RETURNING signal_key, instance, event_key",
    )
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    let (signals, keys) = unconfirmed_keys(unconfirmed);
    let forgotten: Vec<String> = if keys.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar(
            "DELETE FROM processed_events WHERE event_key = ANY($1) RETURNING event_key",
        )
        .bind(&keys)
        .fetch_all(&mut *conn)
        .await?
    };
    Ok((signals, forgotten))
}

async fn insert_gap(
    conn: &mut PgConnection,
    gap: &HistoryGap,
    resolution: GapResolution,
    detail: Option<&ResyncSummary>,
    now: Timestamp,
) -> Result<(), StoreError> {
    let row = GapRow {
        from: gap.from,
        to: gap.to,
        form: gap.form,
        resolution,
        detail,
    };
    execute_for_rows(
        conn,
        "INSERT INTO history_gaps (from_seq, to_seq, form, detected_at, resolution, detail)
         SELECT g.from, g.to, g.form, $2, g.resolution, g.detail
         FROM jsonb_to_recordset($1::jsonb)
             AS g(\"from\" bigint, \"to\" bigint, form text, resolution text, detail jsonb)",
        &[row],
        now,
    )
    .await
}
