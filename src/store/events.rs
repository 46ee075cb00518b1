//! The exactly-once core: dedupe set, effects and cursor committed in one transaction.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::Serialize;
use sqlx::SqliteConnection;
use sqlx::types::Json;

use super::dedupe::{DedupeIndex, Fingerprint, KeySource, Loaded};
use super::jobs::{self, PrepareJobUpdate};
use super::orders::{self, OrderUpdate};
use super::positions::{self, LegUpdate, PositionUpdate};
use super::signals::{self, SignalUpdate};
use super::{
    Store, StoreError, Timestamp, WriterGuard, begin_write, execute_for_rows, execute_values,
    json_text, on_postgres, outbox, postgres,
};
use crate::notifications::notice::{self, Notice, Quarantined};

/// One event as the store sees it: its identity, its place in the sequence, and what it changes.
/// The event pump builds these from the hub's wire models.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Dedupe key: the `EventId`, or a content key for events that carry none.
    pub key: String,
    /// The `EventSeqId`, absent on some on-connect pushes; only present ids move the cursor.
    pub seq_id: Option<i64>,
    /// The hub callback it arrived on (`OnOrderUpdate`…), for statistics and quarantine.
    pub target: String,
    /// What applying it changes.
    pub effect: Effect,
}

/// The state change an event causes; applied at most once per event key.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Nothing to store beyond "seen" (agent status, strategy errors…).
    None,
    /// Latest state of an entry/exit/adjustment signal.
    Signal(SignalUpdate),
    /// A position was created, adjusted, closed, or its PnL changed.
    Position(PositionUpdate),
    /// A leg changed.
    Leg(LegUpdate),
    /// An order changed.
    Order(OrderUpdate),
    /// A prepare job completed or failed.
    Job(PrepareJobUpdate),
    /// The event could not be parsed: keep it verbatim for an operator.
    Quarantine {
        /// The payload exactly as received.
        raw: String,
        /// Why it could not be parsed.
        error: String,
    },
}

/// What happened to one record of a batch; callers react only to `Applied`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Recorded and its effect applied (by this call, now committed).
    Applied,
    /// Skipped: its `EventSeqId` is at or below the cursor.
    BelowCursor,
    /// Skipped: its key is already in the dedupe set.
    AlreadyProcessed,
}

/// The result of one committed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    /// One outcome per input record, in input order.
    pub outcomes: Vec<RecordOutcome>,
    /// The cursor after the commit (`None` if no event with a sequence id was ever processed).
    pub cursor: Option<i64>,
}

impl BatchOutcome {
    /// How many records had their effect applied.
    pub fn applied_count(&self) -> usize {
        self.outcomes
            .iter()
            .filter(|o| **o == RecordOutcome::Applied)
            .count()
    }
}

/// An event kept aside because it could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct QuarantinedEvent {
    /// Row id, for an operator to refer to.
    pub id: i64,
    /// Its dedupe key.
    pub event_key: String,
    /// Its `EventSeqId`, if it had one.
    pub seq_id: Option<i64>,
    /// The hub callback it arrived on.
    pub target: String,
    /// The payload exactly as received.
    pub raw: String,
    /// Why it could not be parsed.
    pub error: String,
    /// When it was quarantined.
    pub quarantined_at: Timestamp,
}

impl Store {
    /// Commit a batch of events exactly once, in one `BEGIN IMMEDIATE` transaction.
    ///
    /// For each record in order: skip it if its sequence id is at or below the cursor (as
    /// advanced so far in this batch), or if its key is already in the dedupe set; otherwise
    /// record the key, apply the effect and count it. The cursor moves to the highest sequence
    /// id seen, never backwards; records without one never move it. Any failure rolls the whole
    /// batch back (cursor, dedupe set, effects and counts exactly as before). Quarantined
    /// events are notified in the same transaction.
    pub async fn apply_events(&self, batch: &[EventRecord]) -> Result<BatchOutcome, StoreError> {
        let outcome = self.commit_events(batch).await?;
        let quarantined = batch.iter().zip(&outcome.outcomes).any(|(record, result)| {
            *result == RecordOutcome::Applied && matches!(record.effect, Effect::Quarantine { .. })
        });
        if quarantined {
            self.outbox_changed();
        }
        Ok(outcome)
    }

    /// The transaction of [`Store::apply_events`], in either backend.
    async fn commit_events(&self, batch: &[EventRecord]) -> Result<BatchOutcome, StoreError> {
        let db = on_postgres!(self, pg => postgres::events::apply(pg, batch));
        let (mut writer, mut dedupe) = db.writer_with_dedupe().await?;
        let committed = commit_batch(&mut writer, &mut dedupe, batch).await;
        dedupe.follow(committed, |index, (outcome, recorded)| {
            index.record(recorded);
            outcome
        })
    }

    /// The last processed `EventSeqId`, or `None` before the first event / initialisation.
    pub async fn cursor(&self) -> Result<Option<i64>, StoreError> {
        let db = on_postgres!(self, pg => postgres::events::cursor(pg));
        let mut reader = db.readers.acquire().await?;
        read_cursor(&mut reader).await
    }

    /// First run: start from the server's latest sequence id instead of replaying all history.
    /// A no-op when a cursor already exists (it never moves backwards, nor jumps forward here).
    /// Returns the cursor in force afterwards.
    pub async fn init_cursor(&self, latest_seq_id: i64) -> Result<i64, StoreError> {
        let db = on_postgres!(self, pg => postgres::events::init_cursor(pg, latest_seq_id));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let cursor = match read_cursor(&mut tx).await? {
            Some(existing) => existing,
            None => {
                write_cursor(&mut tx, latest_seq_id, Timestamp::now()).await?;
                latest_seq_id
            }
        };
        tx.commit().await?;
        Ok(cursor)
    }

    /// Forget at most `limit` dedupe keys processed more than `older_than` ago (the session
    /// window), oldest first, in one short transaction; returns how many went. The window is by
    /// age, never by count, so a burst cannot push out young keys; the limit keeps each
    /// transaction short so the event pump never waits long for the writer.
    pub async fn prune_processed_events(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let cutoff = Timestamp::now().minus(older_than);
        let db = on_postgres!(self, pg => postgres::events::prune(pg, cutoff, limit));
        let (mut writer, mut dedupe) = db.writer_with_dedupe().await?;
        let pruned = delete_older_keys(&mut writer, cutoff, limit).await;
        dedupe.follow(pruned, |index, keys| {
            index.forget(keys.iter().map(String::as_str));
            keys.len() as u64
        })
    }

    /// The most recent quarantined events, newest first.
    pub async fn quarantined_events(
        &self,
        limit: u32,
    ) -> Result<Vec<QuarantinedEvent>, StoreError> {
        let db = on_postgres!(self, pg => postgres::events::quarantined(pg, limit));
        let mut reader = db.readers.acquire().await?;
        latest_quarantined(&mut reader, limit).await
    }

    /// Events applied per hub target since the database was created.
    pub async fn applied_event_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let db = on_postgres!(self, pg => postgres::events::applied_counts(pg));
        let mut reader = db.readers.acquire().await?;
        Ok(
            sqlx::query_as("SELECT target, applied FROM event_stats ORDER BY target")
                .fetch_all(&mut *reader)
                .await?,
        )
    }
}

/// The newest `limit` quarantined events, newest first.
pub(super) async fn latest_quarantined(
    conn: &mut SqliteConnection,
    limit: u32,
) -> Result<Vec<QuarantinedEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, event_key, seq_id, target, raw, error, quarantined_at
         FROM quarantined_events ORDER BY id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Which records of a batch are applied, decided before any write (the same in both backends):
/// the sequence filter, then the dedupe set, in batch order.
pub(super) struct Selection<'b> {
    /// One outcome per input record.
    pub(super) outcomes: Vec<RecordOutcome>,
    /// The records to apply, in batch order.
    pub(super) applied: Vec<&'b EventRecord>,
    /// The fingerprints of their keys, for the index once committed.
    pub(super) recorded: HashSet<Fingerprint>,
    /// The cursor after the batch.
    pub(super) cursor: Option<i64>,
    /// Whether the cursor moved (it is then written).
    pub(super) cursor_moved: bool,
}

impl<'b> Selection<'b> {
    /// Skip a record whose sequence id is at or below the cursor (as advanced so far in this
    /// batch), or whose key the dedupe set (or this batch) already holds; apply the others. A
    /// record whose key turns out to be known still moves the cursor: the event at that
    /// sequence id has been handled, earlier.
    pub(super) fn of(
        batch: &'b [EventRecord],
        start_cursor: Option<i64>,
        index: &Loaded<'_>,
    ) -> Self {
        let mut cursor = start_cursor;
        let mut outcomes = vec![RecordOutcome::BelowCursor; batch.len()];
        let mut applied = Vec::with_capacity(batch.len());
        let mut recorded = HashSet::with_capacity(batch.len());
        for (record, outcome) in batch.iter().zip(&mut outcomes) {
            if let (Some(seq), Some(current)) = (record.seq_id, cursor)
                && seq <= current
            {
                continue;
            }
            if let Some(seq) = record.seq_id {
                cursor = Some(cursor.map_or(seq, |current| current.max(seq)));
            }
            let fingerprint = index.fingerprint(&record.key);
            *outcome = if index.contains(fingerprint) || !recorded.insert(fingerprint) {
                RecordOutcome::AlreadyProcessed
            } else {
                applied.push(record);
                RecordOutcome::Applied
            };
        }
        Selection {
            outcomes,
            applied,
            recorded,
            cursor_moved: cursor != start_cursor,
            cursor,
        }
    }

    /// The outcome and the recorded fingerprints, once the selection is committed.
    pub(super) fn committed(self) -> (BatchOutcome, HashSet<Fingerprint>) {
        let outcome = BatchOutcome {
            outcomes: self.outcomes,
            cursor: self.cursor,
        };
        (outcome, self.recorded)
    }

    /// The dedupe-set rows of the applied records, as PostgreSQL's JSON insert reads them
    /// (SQLite binds the records' fields into a multi-row statement instead).
    pub(super) fn key_rows(&self) -> Vec<KeyRow<'b>> {
        self.applied
            .iter()
            .map(|record| KeyRow {
                key: &record.key,
                seq_id: record.seq_id,
                target: &record.target,
            })
            .collect()
    }

    /// Applied records per hub target, for the statistics.
    pub(super) fn per_target(&self) -> HashMap<&'b str, i64> {
        let mut per_target: HashMap<&str, i64> = HashMap::new();
        for record in &self.applied {
            *per_target.entry(&record.target).or_default() += 1;
        }
        per_target
    }

    /// The applied effects, grouped by kind (in batch order within each).
    pub(super) fn effects(&self) -> EffectRows<'b> {
        let mut rows = EffectRows::default();
        for record in &self.applied {
            match &record.effect {
                Effect::None => {}
                Effect::Signal(update) => rows.signals.push((update, record.key.as_str())),
                Effect::Position(update) => rows.positions.push(update),
                Effect::Leg(update) => rows.legs.push(update),
                Effect::Order(update) => rows.orders.push(update),
                Effect::Job(update) => rows.jobs.push(update),
                Effect::Quarantine { raw, error } => rows.quarantined.push(QuarantineRow {
                    key: &record.key,
                    seq_id: record.seq_id,
                    target: &record.target,
                    raw,
                    error,
                }),
            }
        }
        rows
    }
}

/// The effects of a batch, one list per kind of effect (one statement each).
#[derive(Default)]
pub(super) struct EffectRows<'b> {
    pub(super) signals: Vec<(&'b SignalUpdate, &'b str)>,
    pub(super) positions: Vec<&'b PositionUpdate>,
    pub(super) legs: Vec<&'b LegUpdate>,
    pub(super) orders: Vec<&'b OrderUpdate>,
    pub(super) jobs: Vec<&'b PrepareJobUpdate>,
    pub(super) quarantined: Vec<QuarantineRow<'b>>,
}

impl EffectRows<'_> {
    /// The notice of the events this batch quarantined, if any (queued in the batch's
    /// transaction).
    pub(super) fn quarantine_notice(&self) -> Option<Notice> {
        if self.quarantined.is_empty() {
            return None;
        }
        let listed: Vec<Quarantined<'_>> = self
            .quarantined
            .iter()
            .map(|q| Quarantined {
                target: q.target,
                seq_id: q.seq_id,
                error: q.error,
            })
            .collect();
        Some(notice::events_quarantined(&listed))
    }
}

/// The body of [`Store::apply_events`]: returns the outcome and, once committed, the
/// fingerprints of the keys it recorded.
async fn commit_batch(
    writer: &mut WriterGuard<'_>,
    dedupe: &mut DedupeIndex,
    batch: &[EventRecord],
) -> Result<(BatchOutcome, HashSet<Fingerprint>), StoreError> {
    let now = Timestamp::now();
    let index = dedupe.load(&mut **writer).await?;
    let mut tx = begin_write(writer).await?;
    let start_cursor = read_cursor(&mut tx).await?;
    let selection = Selection::of(batch, start_cursor, &index);
    execute_values(
        &mut tx,
        "INSERT INTO processed_events (event_key, seq_id, target, processed_at)",
        "(?, ?, ?, ?)",
        "",
        &selection.applied,
        |query, record| {
            query
                .bind(record.key.as_str())
                .bind(record.seq_id)
                .bind(record.target.as_str())
                .bind(now)
        },
    )
    .await?;
    apply_effects(&mut tx, &selection.effects(), now).await?;
    count_applied(&mut tx, &selection.per_target()).await?;
    if let Some(seq) = selection.cursor.filter(|_| selection.cursor_moved) {
        write_cursor(&mut tx, seq, now).await?;
    }
    tx.commit().await?;
    Ok(selection.committed())
}

/// The dedupe index's loader. One JSON array per chunk: rows cross from SQLite's worker thread
/// one message each.
impl KeySource for SqliteConnection {
    async fn key_chunk(
        &mut self,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<String>, Option<i64>), StoreError> {
        let (Json(keys), last): (Json<Vec<String>>, Option<i64>) = sqlx::query_as(
            "SELECT json_group_array(event_key), max(id) FROM (
                 SELECT id, event_key FROM processed_events WHERE id > ? ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(limit)
        .fetch_one(self)
        .await?;
        Ok((keys, last))
    }
}

/// Delete at most `limit` dedupe keys processed before `cutoff`, oldest first; returns them.
async fn delete_older_keys(
    writer: &mut WriterGuard<'_>,
    cutoff: Timestamp,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    let mut tx = begin_write(writer).await?;
    let keys = sqlx::query_scalar(
        "DELETE FROM processed_events WHERE id IN (
             SELECT id FROM processed_events WHERE processed_at < ?
             ORDER BY processed_at LIMIT ?)
         RETURNING event_key",
    )
    .bind(cutoff)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(keys)
}

pub(super) async fn read_cursor(conn: &mut SqliteConnection) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT seq_id FROM event_cursor WHERE id = 1")
            .fetch_optional(conn)
            .await?,
    )
}

pub(super) async fn write_cursor(
    conn: &mut SqliteConnection,
    seq_id: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_cursor (id, seq_id, updated_at) VALUES (1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET seq_id = excluded.seq_id, updated_at = excluded.updated_at
         WHERE excluded.seq_id > event_cursor.seq_id",
    )
    .bind(seq_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A dedupe-set row as PostgreSQL's insert reads it.
#[derive(Serialize)]
pub(super) struct KeyRow<'a> {
    key: &'a str,
    seq_id: Option<i64>,
    target: &'a str,
}

/// A quarantine row as the insert reads it.
#[derive(Serialize)]
pub(super) struct QuarantineRow<'a> {
    key: &'a str,
    seq_id: Option<i64>,
    target: &'a str,
    raw: &'a str,
    error: &'a str,
}

/// Apply the effects of a batch: one statement per kind of effect.
async fn apply_effects(
    conn: &mut SqliteConnection,
    rows: &EffectRows<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    signals::upsert(conn, &rows.signals, now).await?;
    positions::upsert_positions(conn, &rows.positions, now).await?;
    positions::upsert_legs(conn, &rows.legs, now).await?;
    orders::upsert(conn, &rows.orders, now).await?;
    jobs::upsert(conn, &rows.jobs, now).await?;
    if let Some(notice) = rows.quarantine_notice() {
        outbox::enqueue(conn, &notice).await?;
    }
    execute_for_rows(
        conn,
        "INSERT INTO quarantined_events (event_key, seq_id, target, raw, error, quarantined_at)
         SELECT q.value ->> 'key', q.value ->> 'seq_id', q.value ->> 'target',
                q.value ->> 'raw', q.value ->> 'error', ?2
         FROM jsonb_each(?1) AS q WHERE true ORDER BY q.key",
        &rows.quarantined,
        now,
    )
    .await
}

/// Add the applied records to the per-target statistics.
async fn count_applied(
    conn: &mut SqliteConnection,
    per_target: &HashMap<&str, i64>,
) -> Result<(), StoreError> {
    if per_target.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO event_stats (target, applied)
         SELECT s.key, s.value FROM jsonb_each(?1) AS s WHERE true
         ON CONFLICT (target) DO UPDATE SET applied = applied + excluded.applied",
    )
    .bind(json_text(per_target)?)
    .execute(conn)
    .await?;
    Ok(())
}
