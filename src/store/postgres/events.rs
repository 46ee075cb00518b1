//! The exactly-once core on PostgreSQL: dedupe set, effects and cursor in one fenced
//! transaction; which records apply is decided by the same [`Selection`] as in SQLite.

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{Postgres, Write, execute_for_rows, jobs, orders, outbox, positions, signals};
use crate::store::dedupe::KeySource;
use crate::store::events::{EffectRows, Selection};
use crate::store::{BatchOutcome, EventRecord, QuarantinedEvent, StoreError, Timestamp, json_text};

/// [`crate::store::Store::apply_events`].
pub(in crate::store) async fn apply(
    db: &Postgres,
    batch: &[EventRecord],
) -> Result<BatchOutcome, StoreError> {
    let Write {
        mut tx, mut dedupe, ..
    } = db.begin_write().await?;
    let committed = async {
        let now = Timestamp::now();
        let index = dedupe.load(&mut *tx).await?;
        let start_cursor = read_cursor(&mut tx).await?;
        let selection = Selection::of(batch, start_cursor, &index);
        execute_for_rows(
            &mut tx,
            "INSERT INTO processed_events (event_key, seq_id, target, processed_at)
             SELECT r.key, r.seq_id, r.target, $2
             FROM jsonb_to_recordset($1::jsonb) AS r(key text, seq_id bigint, target text)",
            &selection.key_rows(),
            now,
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
    .await;
    dedupe.follow(committed, |index, (outcome, recorded)| {
        index.record(recorded);
        outcome
    })
}

/// [`crate::store::Store::cursor`].
pub(in crate::store) async fn cursor(db: &Postgres) -> Result<Option<i64>, StoreError> {
    read_cursor(&mut *db.reader().await?).await
}

/// [`crate::store::Store::init_cursor`].
pub(in crate::store) async fn init_cursor(db: &Postgres, latest: i64) -> Result<i64, StoreError> {
    let mut write = db.begin_write().await?;
    let cursor = match read_cursor(&mut write.tx).await? {
        Some(existing) => existing,
        None => {
            write_cursor(&mut write.tx, latest, Timestamp::now()).await?;
            latest
        }
    };
    write.tx.commit().await?;
    Ok(cursor)
}

/// [`crate::store::Store::prune_processed_events`].
pub(in crate::store) async fn prune(
    db: &Postgres,
    cutoff: Timestamp,
    limit: u32,
) -> Result<u64, StoreError> {
    let Write {
        mut tx, mut dedupe, ..
    } = db.begin_write().await?;
    let pruned = async {
        let keys: Vec<String> = sqlx::query_scalar(
            "DELETE FROM processed_events WHERE id IN (
                 SELECT id FROM processed_events WHERE processed_at < $1
                 ORDER BY processed_at LIMIT $2)
             RETURNING event_key",
        )
        .bind(cutoff)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(keys)
    }
    .await;
    dedupe.follow(pruned, |index, keys| {
        index.forget(keys.iter().map(String::as_str));
        keys.len() as u64
    })
}

/// [`crate::store::Store::quarantined_events`].
pub(in crate::store) async fn quarantined(
    db: &Postgres,
    limit: u32,
) -> Result<Vec<QuarantinedEvent>, StoreError> {
    latest_quarantined(&mut *db.reader().await?, limit).await
}

/// [`crate::store::Store::applied_event_counts`].
pub(in crate::store) async fn applied_counts(
    db: &Postgres,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(
        sqlx::query_as("SELECT target, applied FROM event_stats ORDER BY target")
            .fetch_all(&mut *db.reader().await?)
            .await?,
    )
}

/// The newest `limit` quarantined events, newest first.
pub(super) async fn latest_quarantined(
    conn: &mut PgConnection,
    limit: u32,
) -> Result<Vec<QuarantinedEvent>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT id, event_key, seq_id, target, raw, error, quarantined_at
         FROM quarantined_events ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(limit))
    .fetch_all(conn)
    .await?)
}

/// The dedupe index's loader.
impl KeySource for PgConnection {
    async fn key_chunk(
        &mut self,
        after: i64,
        limit: u32,
    ) -> Result<(Vec<String>, Option<i64>), StoreError> {
        let (keys, last): (Option<Vec<String>>, Option<i64>) = sqlx::query_as(
            "SELECT array_agg(event_key ORDER BY id), max(id) FROM (
                 SELECT id, event_key FROM processed_events WHERE id > $1 ORDER BY id LIMIT $2)
                 AS chunk",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_one(self)
        .await?;
        Ok((keys.unwrap_or_default(), last))
    }
}

pub(super) async fn read_cursor(conn: &mut PgConnection) -> Result<Option<i64>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT seq_id FROM event_cursor WHERE id = 1")
            .fetch_optional(conn)
            .await?,
    )
}

/// Moves the cursor to `seq_id`, never backwards.
pub(super) async fn write_cursor(
    conn: &mut PgConnection,
    seq_id: i64,
    now: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO event_cursor (id, seq_id, updated_at) VALUES (1, $1, $2)
         ON CONFLICT (id) DO UPDATE SET seq_id = excluded.seq_id, updated_at = excluded.updated_at
         WHERE excluded.seq_id > event_cursor.seq_id",
    )
    .bind(seq_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Apply the effects of a batch: one statement (or round) per kind of effect.
async fn apply_effects(
    conn: &mut PgConnection,
    rows: &EffectRows<'_>,
    now: Timestamp,
) -> Result<(), StoreError> {
    signals::upsert(conn, &rows.signals, now).await?;
    positions::upsert_rows(conn, &rows.positions, now).await?;
    positions::upsert_legs(conn, &rows.legs, now).await?;
    orders::upsert(conn, &rows.orders, now).await?;
    jobs::upsert(conn, &rows.jobs, now).await?;
    if let Some(notice) = rows.quarantine_notice() {
        outbox::enqueue(conn, &notice).await?;
    }
    execute_for_rows(
        conn,
        "INSERT INTO quarantined_events (event_key, seq_id, target, raw, error, quarantined_at)
         SELECT r.key, r.seq_id, r.target, r.raw, r.error, $2
         FROM jsonb_to_recordset($1::jsonb)
             AS r(key text, seq_id bigint, target text, raw text, error text)",
        &rows.quarantined,
        now,
    )
    .await
}

/// Add the applied records to the per-target statistics.
async fn count_applied(
    conn: &mut PgConnection,
    per_target: &HashMap<&str, i64>,
) -> Result<(), StoreError> {
    if per_target.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO event_stats (target, applied)
         SELECT s.key, s.value::bigint FROM jsonb_each_text($1::jsonb) AS s
         ON CONFLICT (target) DO UPDATE SET applied = event_stats.applied + excluded.applied",
    )
    .bind(json_text(per_target)?)
    .execute(conn)
    .await?;
    Ok(())
}
