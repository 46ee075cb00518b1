//! Holes in the event history: EventSeqIds the server no longer had when the daemon asked for
//! them (API §6.3: retention is UNKNOWN; a cursor older than it shows up "as an error or a
//! gap"), and the resync from the Control Hub that answered each one — committed as one
//! operation with the hole's record, so a crash leaves either the old state and cursor (the
//! hole is met again) or the resynced state past the hole.

use serde::Serialize;
use sqlx::SqliteConnection;

use super::events::write_cursor;
use super::orders::{self, OrderUpdate};
use super::positions::{self, LegUpdate, PositionUpdate};
use super::{
    Store, StoreError, Timestamp, WriterGuard, begin_write, execute_for_rows, json_text,
    on_postgres, postgres,
};

/// How a hole showed itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum GapForm {
    /// A replay page started past the next expected EventSeqId.
    Page,
    /// `GetEventsSince` refused the cursor as older than the history the server keeps.
    Refused,
    /// `GetLatestEventSeqId` said the oldest event it keeps is past the cursor.
    Oldest,
}

impl GapForm {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            GapForm::Page => "page",
            GapForm::Refused => "refused",
            GapForm::Oldest => "oldest",
        }
    }
}

/// What was done about a hole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, sqlx::Type)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum GapResolution {
    /// The state was resynced from the Control Hub and the cursor moved past the hole.
    Resynced,
    /// The daemon stopped (`events.on_history_gap = "stop"`).
    Stopped,
}

impl GapResolution {
    /// The stored (and displayed) name.
    pub fn as_str(self) -> &'static str {
        match self {
            GapResolution::Resynced => "resynced",
            GapResolution::Stopped => "stopped",
        }
    }
}

/// A hole: the events `from..=to` are gone from the server's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryGap {
    /// The first EventSeqId missing (the cursor + 1).
    pub from: i64,
    /// The last EventSeqId missing; the cursor moves here once the hole is resynced.
    pub to: i64,
    /// How it showed itself.
    pub form: GapForm,
}

impl HistoryGap {
    /// How many events are missing.
    pub fn events(&self) -> i64 {
        self.to - self.from + 1
    }
}

/// The Control Hub's view that replaces what a hole hid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resync {
    /// Every position the server lists open.
    pub open_positions: Vec<PositionUpdate>,
    /// Positions the store held open that the server confirmed closed (or no longer knows).
    pub closed_positions: Vec<i64>,
    /// The legs of the open positions.
    pub legs: Vec<LegUpdate>,
    /// The orders of the execution plans that were still running.
    pub orders: Vec<OrderUpdate>,
}

/// What a resync changed, kept with its hole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ResyncSummary {
    /// Positions the server lists open.
    pub open_positions: usize,
    /// Positions closed because the server no longer had them open.
    pub closed_positions: Vec<i64>,
    /// Legs re-read.
    pub legs: usize,
    /// Orders re-read.
    pub orders: usize,
    /// Signals held On, not acted on by a running workflow, that the hole may have turned
    /// Off: now Off until the server asserts them again.
    pub signals_unconfirmed: Vec<String>,
    /// The cursor after the resync (the last EventSeqId of the hole).
    pub cursor: i64,
}

/// A recorded hole, as `state` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryGapRecord {
    /// Row id.
    pub id: i64,
    /// The first EventSeqId missing.
    #[sqlx(rename = "from_seq")]
    pub from: i64,
    /// The last EventSeqId missing.
    #[sqlx(rename = "to_seq")]
    pub to: i64,
    /// How many events are missing.
    pub events: i64,
    /// How it showed itself.
    pub form: GapForm,
    /// When it was detected.
    pub detected_at: Timestamp,
    /// What was done about it.
    pub resolution: GapResolution,
    /// What the resync changed (`None` when the daemon stopped instead).
    #[sqlx(json(nullable))]
    pub detail: Option<ResyncSummary>,
}

impl Store {
    /// Commits a resync after `gap` as one operation: the positions the server lists open, the
    /// positions it confirmed closed, the legs and orders it gave; every signal held On and not
    /// acted on by a running workflow set Off, of unknown age, and the keys of its events
    /// forgotten from the dedupe set (the hole may hold its Off; the server's on-connect
    /// re-assertion of it, if it still asserts it, is applied again, to the same instance); the
    /// cursor at the end of the hole; and the hole's record.
    pub async fn resync_after_history_gap(
        &self,
        gap: &HistoryGap,
        resync: &Resync,
    ) -> Result<ResyncSummary, StoreError> {
        let db = on_postgres!(self, pg => postgres::history::resync(pg, gap, resync));
        let (mut writer, mut dedupe) = db.writer_with_dedupe().await?;
        let committed = commit_resync(&mut writer, gap, resync).await;
        dedupe.follow(committed, |index, (summary, forgotten)| {
            index.forget(forgotten.iter().map(String::as_str));
            summary
        })
    }

    /// Records a hole the daemon stops on (`events.on_history_gap = "stop"`).
    pub async fn record_history_gap_stop(&self, gap: &HistoryGap) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::history::record_stop(pg, gap));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        insert_gap(&mut tx, gap, GapResolution::Stopped, None, Timestamp::now()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every recorded hole, oldest first.
    pub async fn history_gaps(&self) -> Result<Vec<HistoryGapRecord>, StoreError> {
        let db = on_postgres!(self, pg => postgres::history::all(pg));
        let mut reader = db.readers.acquire().await?;
        all(&mut reader).await
    }
}

/// Every recorded hole, oldest first.
pub(super) async fn all(conn: &mut SqliteConnection) -> Result<Vec<HistoryGapRecord>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, from_seq, to_seq, to_seq - from_seq + 1 AS events, form, detected_at,
                resolution, detail
         FROM history_gaps ORDER BY id",
    )
    .fetch_all(conn)
    .await?)
}

/// The body of [`Store::resync_after_history_gap`]: the summary and the dedupe keys forgotten.
async fn commit_resync(
    writer: &mut WriterGuard<'_>,
    gap: &HistoryGap,
    resync: &Resync,
) -> Result<(ResyncSummary, Vec<String>), StoreError> {
    let now = Timestamp::now();
    let mut tx = begin_write(writer).await?;
    let open: Vec<&PositionUpdate> = resync.open_positions.iter().collect();
    positions::upsert_positions(&mut tx, &open, now).await?;
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

/// Sets Off every signal held On whose instance no running workflow acts on, with no EventSeqId
/// or EventTime (any re-assertion replaces it), and deletes the dedupe keys of the events behind
/// it. Returns the signals and the keys.
async fn unconfirm_signals(
    conn: &mut SqliteConnection,
    now: Timestamp,
) -> Result<(Vec<String>, Vec<String>), StoreError> {
    let unconfirmed: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "UPDATE signals SET state = 'Off', event_seq_id = NULL, event_time = NULL, updated_at = ?
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
            "DELETE FROM processed_events
             WHERE event_key IN (SELECT value FROM json_each(?)) RETURNING event_key",
        )
        .bind(json_text(&keys)?)
        .fetch_all(&mut *conn)
        .await?
    };
    Ok((signals, forgotten))
}

/// The signals set Off (sorted) and the dedupe keys of the events behind them (their instance
/// and their last event), from `(signal, instance, event)` rows.
pub(super) fn unconfirmed_keys(
    unconfirmed: Vec<(String, String, Option<String>)>,
) -> (Vec<String>, Vec<String>) {
    let mut signals = Vec::with_capacity(unconfirmed.len());
    let mut keys = Vec::with_capacity(2 * unconfirmed.len());
    for (signal, instance, event) in unconfirmed {
        signals.push(signal);
        keys.push(instance);
        keys.extend(event);
    }
    keys.sort_unstable();
    keys.dedup();
    signals.sort_unstable();
    (signals, keys)
}

/// What a resync changed, as recorded with its hole.
pub(super) fn resync_summary(
    gap: &HistoryGap,
    resync: &Resync,
    signals_unconfirmed: Vec<String>,
) -> ResyncSummary {
    ResyncSummary {
        open_positions: resync.open_positions.len(),
        closed_positions: resync.closed_positions.clone(),
        legs: resync.legs.len(),
        orders: resync.orders.len(),
        signals_unconfirmed,
        cursor: gap.to,
    }
}

/// A history-gap row as the insert reads it.
#[derive(Serialize)]
pub(super) struct GapRow<'a> {
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) form: GapForm,
    pub(super) resolution: GapResolution,
    pub(super) detail: Option<&'a ResyncSummary>,
}

async fn insert_gap(
    conn: &mut SqliteConnection,
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
         SELECT g.value ->> 'from', g.value ->> 'to', g.value ->> 'form', ?2,
                g.value ->> 'resolution',
                CASE WHEN g.value ->> 'detail' IS NULL THEN NULL ELSE g.value -> 'detail' END
         FROM jsonb_each(?1) AS g",
        &[row],
        now,
    )
    .await
}
