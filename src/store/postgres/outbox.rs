//! The notification outbox on PostgreSQL (see `store/outbox.rs` for the rules): the same
//! statements, JSON as JSONB, each write fenced. A notification is queued in its cause's
//! transaction through `Write::notify`, or — the one write a standby makes — in the lease
//! transaction that tells it stands by (`lease::tell_standby`).

use std::time::Duration;

use sqlx::PgConnection;
use sqlx::types::Json;

use super::Postgres;
use crate::notifications::notice::{self, Kind, Notice, Severity};
use crate::store::outbox::FAILURES_LISTED;
use crate::store::{
    Notification, OutboxStatus, OutboxSummary, SinkRegistration, StoreError, Timestamp,
};

/// Whether sink `s` wants notification `n` (as in `store/outbox.rs`).
macro_rules! wanted {
    () => {
        "(n.severity >= s.min_severity
          AND (s.kinds IS NULL OR n.kind IN (SELECT jsonb_array_elements_text(s.kinds))))"
    };
}

/// Whether sink `s` still has to take notification `n`.
macro_rules! pending_for_sink {
    () => {
        concat!("(n.seq > s.delivered_seq AND ", wanted!(), ")")
    };
}

/// Whether some sink still has to take notification `n`.
macro_rules! pending {
    () => {
        concat!(
            "EXISTS (SELECT 1 FROM notification_sinks AS s WHERE ",
            pending_for_sink!(),
            ")"
        )
    };
}

/// `store::outbox::enqueue` on PostgreSQL: queues `notice` in the caller's transaction if a
/// sink wants it (then `true`), then holds the bound.
pub(super) async fn enqueue(conn: &mut PgConnection, notice: &Notice) -> Result<bool, StoreError> {
    let queued = sqlx::query(concat!(
        "INSERT INTO notifications (kind, severity, created_at, text, data)
         SELECT n.kind, n.severity, $3, $4, $5 FROM (SELECT $1::text AS kind, $2::integer AS severity) AS n
         WHERE EXISTS (SELECT 1 FROM notification_sinks AS s WHERE ",
        wanted!(),
        ")"
    ))
    .bind(notice.kind.as_str())
    .bind(notice.severity)
    .bind(Timestamp::now())
    .bind(&notice.text)
    .bind(Json(&notice.data))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if queued > 0 {
        hold_bound(conn).await?;
    }
    Ok(queued > 0)
}

/// Whether a registered sink wants notices of `kind` at `severity`.
pub(super) async fn wanted(
    conn: &mut PgConnection,
    kind: Kind,
    severity: Severity,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT EXISTS (SELECT 1 FROM notification_sinks AS s,
                        (SELECT $1::text AS kind, $2::integer AS severity) AS n WHERE ",
        wanted!(),
        ")"
    ))
    .bind(kind.as_str())
    .bind(severity)
    .fetch_one(conn)
    .await?)
}

/// Drops the oldest pending notifications past `max_pending` and has one "N notifications
/// dropped" notification say so (as in `store/outbox.rs`).
async fn hold_bound(conn: &mut PgConnection) -> Result<(), StoreError> {
    let (max_pending, span): (i64, Option<i64>) = sqlx::query_as(
        "SELECT max_pending,
                (SELECT MAX(seq) FROM notifications)
                  - (SELECT MIN(delivered_seq) FROM notification_sinks)
         FROM notification_outbox WHERE id = 1",
    )
    .fetch_one(&mut *conn)
    .await?;
    if span.is_none_or(|span| span <= max_pending) {
        return Ok(());
    }
    let pending = count_pending(conn).await?;
    if pending <= max_pending {
        return Ok(());
    }
    let open_summary: Option<(i64, i64)> = sqlx::query_as(
        "SELECT seq, COALESCE((data ->> 'dropped')::bigint, 0) FROM notifications
         WHERE kind = $1 AND seq > (SELECT MAX(delivered_seq) FROM notification_sinks)
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(Kind::NotificationsDropped.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let excess = pending - max_pending + i64::from(open_summary.is_none());
    let dropped = sqlx::query(concat!(
        "DELETE FROM notifications WHERE seq IN (
             SELECT n.seq FROM notifications AS n WHERE n.kind != $1 AND ",
        pending!(),
        " ORDER BY n.seq LIMIT $2)"
    ))
    .bind(Kind::NotificationsDropped.as_str())
    .bind(excess)
    .execute(&mut *conn)
    .await?
    .rows_affected() as i64;
    if dropped == 0 {
        return Ok(());
    }
    sqlx::query("UPDATE notification_outbox SET dropped = dropped + $1 WHERE id = 1")
        .bind(dropped)
        .execute(&mut *conn)
        .await?;
    let already = open_summary.map_or(0, |(_, n)| n);
    let summary = notice::notifications_dropped(already + dropped, max_pending);
    match open_summary {
        Some((seq, _)) => {
            sqlx::query(
                "UPDATE notifications SET revision = revision + 1, text = $1, data = $2
                 WHERE seq = $3",
            )
            .bind(&summary.text)
            .bind(Json(&summary.data))
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO notifications (kind, severity, created_at, text, data)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(summary.kind.as_str())
            .bind(summary.severity)
            .bind(Timestamp::now())
            .bind(&summary.text)
            .bind(Json(&summary.data))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn count_pending(conn: &mut PgConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM notifications AS n WHERE ",
        pending!()
    ))
    .fetch_one(conn)
    .await?)
}

async fn read_status(conn: &mut PgConnection) -> Result<OutboxStatus, StoreError> {
    let pending = count_pending(conn).await?;
    let dropped = sqlx::query_scalar("SELECT dropped FROM notification_outbox WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(OutboxStatus { pending, dropped })
}

/// [`crate::store::Store::open_outbox`].
pub(in crate::store) async fn open(
    db: &Postgres,
    sinks: &[SinkRegistration],
    max_pending: u32,
    told: &[Notice],
) -> Result<OutboxStatus, StoreError> {
    let mut write = db.begin_write().await?;
    sqlx::query("UPDATE notification_outbox SET max_pending = $1 WHERE id = 1")
        .bind(i64::from(max_pending))
        .execute(&mut *write.tx)
        .await?;
    let keys: Vec<&str> = sinks.iter().map(|s| s.key.as_str()).collect();
    sqlx::query(
        "DELETE FROM notification_sinks
         WHERE sink NOT IN (SELECT jsonb_array_elements_text($1))",
    )
    .bind(Json(&keys))
    .execute(&mut *write.tx)
    .await?;
    for sink in sinks {
        let kinds = (!sink.kinds.is_empty()).then_some(Json(&sink.kinds));
        sqlx::query(
            "INSERT INTO notification_sinks (sink, label, min_severity, kinds, delivered_seq)
             VALUES ($1, $2, $3, $4, (SELECT COALESCE(MAX(seq), 0) FROM notifications))
             ON CONFLICT (sink) DO UPDATE SET label = excluded.label,
                 min_severity = excluded.min_severity, kinds = excluded.kinds",
        )
        .bind(&sink.key)
        .bind(&sink.label)
        .bind(sink.min_severity)
        .bind(kinds)
        .execute(&mut *write.tx)
        .await?;
    }
    for notice in told {
        write.notify(notice).await?;
    }
    let status = read_status(&mut write.tx).await?;
    write.commit().await?;
    Ok(status)
}

/// [`crate::store::Store::notify`].
pub(in crate::store) async fn notify(db: &Postgres, notice: &Notice) -> Result<(), StoreError> {
    let mut write = db.begin_write().await?;
    write.notify(notice).await?;
    write.commit().await
}

/// [`crate::store::Store::next_notification`].
pub(in crate::store) async fn next(
    db: &Postgres,
    sink: &str,
) -> Result<Option<Notification>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT n.seq, n.revision, n.kind, n.severity, n.created_at, n.text, n.data
         FROM notification_sinks AS s JOIN notifications AS n ON n.seq > s.delivered_seq
         WHERE s.sink = $1 AND ",
        wanted!(),
        " ORDER BY n.seq LIMIT 1"
    ))
    .bind(sink)
    .fetch_optional(&mut *db.reader().await?)
    .await?)
}

/// [`crate::store::Store::notification_delivered`], and with `refused` (the HTTP status and
/// the answer) [`crate::store::Store::notification_failed`].
pub(in crate::store) async fn delivered(
    db: &Postgres,
    sink: &str,
    notification: &Notification,
    refused: Option<(Option<u16>, &str)>,
) -> Result<bool, StoreError> {
    let mut write = db.begin_write().await?;
    let moved = sqlx::query(
        "UPDATE notification_sinks SET delivered_seq = $2, delivered_at = $4
         WHERE sink = $1 AND delivered_seq < $2
           AND NOT EXISTS (SELECT 1 FROM notifications WHERE seq = $2 AND revision != $3)",
    )
    .bind(sink)
    .bind(notification.seq)
    .bind(notification.revision)
    .bind(Timestamp::now())
    .execute(&mut *write.tx)
    .await?
    .rows_affected()
        == 1;
    if let Some((status, reason)) = refused.filter(|_| moved) {
        sqlx::query(
            "INSERT INTO notification_failures (sink, label, seq, kind, status, reason, failed_at)
             SELECT sink, label, $1, $2, $3, $4, $5 FROM notification_sinks WHERE sink = $6",
        )
        .bind(notification.seq)
        .bind(&notification.kind)
        .bind(status.map(i64::from))
        .bind(reason)
        .bind(Timestamp::now())
        .bind(sink)
        .execute(&mut *write.tx)
        .await?;
    }
    write.commit().await?;
    Ok(moved)
}

/// [`crate::store::Store::outbox_status`].
pub(in crate::store) async fn status(db: &Postgres) -> Result<OutboxStatus, StoreError> {
    read_status(&mut *db.reader().await?).await
}

/// [`crate::store::Store::prune_notifications`].
pub(in crate::store) async fn prune(
    db: &Postgres,
    older_than: Duration,
    limit: u32,
) -> Result<u64, StoreError> {
    let cutoff = Timestamp::now().minus(older_than);
    let mut write = db.begin_write().await?;
    let pruned = sqlx::query(concat!(
        "DELETE FROM notifications WHERE seq IN (
             SELECT n.seq FROM notifications AS n WHERE n.created_at < $1 AND NOT ",
        pending!(),
        " ORDER BY n.seq LIMIT $2)"
    ))
    .bind(cutoff)
    .bind(i64::from(limit))
    .execute(&mut *write.tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM notification_failures WHERE failed_at < $1")
        .bind(cutoff)
        .execute(&mut *write.tx)
        .await?;
    write.commit().await?;
    Ok(pruned)
}

/// The outbox for the `state` report.
pub(super) async fn summary(conn: &mut PgConnection) -> Result<OutboxSummary, StoreError> {
    let status = read_status(conn).await?;
    let sinks = sqlx::query_as(concat!(
        "SELECT s.label, s.delivered_seq, s.delivered_at,
                (SELECT COUNT(*) FROM notifications AS n WHERE ",
        pending_for_sink!(),
        ") AS pending
         FROM notification_sinks AS s ORDER BY s.label"
    ))
    .fetch_all(&mut *conn)
    .await?;
    let failures = sqlx::query_as(
        "SELECT failed_at, label, seq, kind, status, reason FROM notification_failures
         ORDER BY id DESC LIMIT $1",
    )
    .bind(i64::from(FAILURES_LISTED))
    .fetch_all(&mut *conn)
    .await?;
    Ok(OutboxSummary {
        status,
        sinks,
        failures,
    })
}
