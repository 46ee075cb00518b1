//! The notification outbox: a notification is a row written in the same transaction as its
//! cause, so a crash never loses one and never invents one. Each configured sink keeps a cursor
//! (`delivered_seq`) and takes the rows after it in `seq` order, at least once; a row is
//! delivered once every sink that wants it has taken it, and then pruned by age like the
//! dedupe set.
//!
//! The outbox is bounded (`notify.max_pending`, kept in the database so that [`enqueue`] needs
//! nothing but the caller's connection): past the bound the oldest undelivered notifications
//! are dropped in the enqueuing transaction, counted, and one "N notifications dropped"
//! notification is queued — or, while no sink has taken it yet, the one already queued counts
//! the new drops too (its revision grows, so a sink that was sending the older revision sends
//! the newer one again, under a new id).
//!
//! With no sink configured nothing is queued.
//!
//! On PostgreSQL (`postgres/outbox.rs`) the same statements run inside fenced transactions,
//! queued through `Write::notify`; a seq becomes visible in the order it was given out because
//! every write that queues one is serialized with the others (see
//! `migrations/postgres/0009_notifications.sql`).

use std::time::Duration;

use serde::Serialize;
use sqlx::SqliteConnection;

use super::{Store, StoreError, Timestamp, begin_write, json_text, on_postgres, postgres};
use crate::notifications::notice::{self, Kind, Notice, Severity};

/// Whether sink `s` wants notification `n`: its severity floor and its kinds. The one place
/// the filter lives; queuing, delivery, the pending count and pruning all read it.
macro_rules! wanted {
    () => {
        "(n.severity >= s.min_severity
          AND (s.kinds IS NULL OR n.kind IN (SELECT value FROM json_each(s.kinds))))"
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

/// A configured sink as the outbox knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkRegistration {
    /// A stable identity derived from the sink's kind and address (never its secret).
    pub key: String,
    /// What logs and `state` call it (kind and host).
    pub label: String,
    /// The least severity it takes.
    pub min_severity: Severity,
    /// The notification kinds it takes; empty: every kind.
    pub kinds: Vec<String>,
}

/// A queued notification, as a sink sends it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Notification {
    /// The delivery order.
    pub seq: i64,
    /// Grows when a "notifications dropped" notification absorbs more drops.
    pub revision: i64,
    /// What it is about (a [`Kind`] name).
    pub kind: String,
    /// How urgent.
    pub severity: Severity,
    /// When its cause was committed.
    pub created_at: Timestamp,
    /// One line for a human.
    pub text: String,
    /// The facts, for a program.
    #[sqlx(json)]
    pub data: serde_json::Value,
}

impl Notification {
    /// The id a receiver dedupes on: stable across restarts and redeliveries, unique to this
    /// database (`instance_id`, the store's identity) and to the revision.
    pub fn id(&self, instance_id: &str) -> String {
        match self.revision {
            0 => format!("{instance_id}-n{}", self.seq),
            revision => format!("{instance_id}-n{}.{revision}", self.seq),
        }
    }
}

/// The outbox in two numbers, for the gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct OutboxStatus {
    /// Notifications some sink still has to take.
    pub pending: i64,
    /// Notifications ever dropped to hold `notify.max_pending`.
    pub dropped: i64,
}

/// Where one sink stands (the `state` report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SinkProgress {
    /// Kind and host.
    pub label: String,
    /// Every notification up to this seq is delivered (or failed for good) there.
    pub delivered_seq: i64,
    /// When the sink last took one.
    pub delivered_at: Option<Timestamp>,
    /// How many it still has to take.
    pub pending: i64,
}

/// A delivery a sink refused for good (4xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct NotificationFailure {
    /// When.
    pub failed_at: Timestamp,
    /// The sink's label.
    pub label: String,
    /// The notification's seq.
    pub seq: i64,
    /// Its kind.
    pub kind: String,
    /// The HTTP status, when there was one.
    pub status: Option<i64>,
    /// What the sink answered.
    pub reason: String,
}

/// The outbox as `state` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxSummary {
    /// Pending and dropped.
    #[serde(flatten)]
    pub status: OutboxStatus,
    /// Every configured sink.
    pub sinks: Vec<SinkProgress>,
    /// The newest refusals, newest first.
    pub failures: Vec<NotificationFailure>,
}

/// How many refusals the summary lists.
pub(super) const FAILURES_LISTED: u32 = 20;

/// Queues `notice` inside the caller's transaction: it is delivered if and only if that
/// transaction commits. This is the one way into the outbox; a store module whose change is a
/// notification's cause (a trading-state change, a risk refusal or switch) calls it with its
/// own open transaction, e.g. `outbox::enqueue(&mut tx, &notice).await?` between its write and
/// its commit. Nothing is queued when no configured sink wants the notice. The senders poll
/// the outbox, so a notice queued here is sent within a second of its commit even without
/// [`Store::outbox_changed`].
pub(crate) async fn enqueue(
    conn: &mut SqliteConnection,
    notice: &Notice,
) -> Result<(), StoreError> {
    let queued = sqlx::query(concat!(
        "INSERT INTO notifications (kind, severity, created_at, text, data)
         SELECT n.kind, n.severity, ?3, ?4, ?5 FROM (SELECT ?1 AS kind, ?2 AS severity) AS n
         WHERE EXISTS (SELECT 1 FROM notification_sinks AS s WHERE ",
        wanted!(),
        ")"
    ))
    .bind(notice.kind.as_str())
    .bind(notice.severity)
    .bind(Timestamp::now())
    .bind(&notice.text)
    .bind(json_text(&notice.data)?)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if queued > 0 {
        hold_bound(conn).await?;
    }
    Ok(())
}

/// Drops the oldest pending notifications past `max_pending` and has one "N notifications
/// dropped" notification say so.
async fn hold_bound(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // (newest seq − lowest cursor) bounds the pending count from above: the count itself is
    // needed only when that bound is over the limit.
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
    // A "dropped" notification no sink has taken yet absorbs the new drops.
    let open_summary: Option<(i64, i64)> = sqlx::query_as(
        "SELECT seq, COALESCE(data ->> 'dropped', 0) FROM notifications
         WHERE kind = ?1 AND seq > (SELECT MAX(delivered_seq) FROM notification_sinks)
         ORDER BY seq DESC LIMIT 1",
    )
    .bind(Kind::NotificationsDropped.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let excess = pending - max_pending + i64::from(open_summary.is_none());
    let dropped = sqlx::query(concat!(
        "DELETE FROM notifications WHERE seq IN (
             SELECT n.seq FROM notifications AS n WHERE n.kind != ?1 AND ",
        pending!(),
        " ORDER BY n.seq LIMIT ?2)"
    ))
    .bind(Kind::NotificationsDropped.as_str())
    .bind(excess)
    .execute(&mut *conn)
    .await?
    .rows_affected() as i64;
    if dropped == 0 {
        return Ok(());
    }
    sqlx::query("UPDATE notification_outbox SET dropped = dropped + ? WHERE id = 1")
        .bind(dropped)
        .execute(&mut *conn)
        .await?;
    let already = open_summary.map_or(0, |(_, n)| n);
    let summary = notice::notifications_dropped(already + dropped, max_pending);
    match open_summary {
        Some((seq, _)) => {
            sqlx::query(
                "UPDATE notifications SET revision = revision + 1, text = ?, data = ? WHERE seq = ?",
            )
            .bind(&summary.text)
            .bind(json_text(&summary.data)?)
            .bind(seq)
            .execute(&mut *conn)
            .await?;
        }
        None => {
            sqlx::query(
                "INSERT INTO notifications (kind, severity, created_at, text, data)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(summary.kind.as_str())
            .bind(summary.severity)
            .bind(Timestamp::now())
            .bind(&summary.text)
            .bind(json_text(&summary.data)?)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn count_pending(conn: &mut SqliteConnection) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(concat!(
        "SELECT COUNT(*) FROM notifications AS n WHERE ",
        pending!()
    ))
    .fetch_one(conn)
    .await?)
}

async fn read_status(conn: &mut SqliteConnection) -> Result<OutboxStatus, StoreError> {
    let pending = count_pending(conn).await?;
    let dropped = sqlx::query_scalar("SELECT dropped FROM notification_outbox WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    Ok(OutboxStatus { pending, dropped })
}

impl Store {
    /// At the start of a term: registers the configured sinks (a new one starts after the
    /// newest queued notification; one no longer configured is forgotten), sets the bound, and
    /// queues what the term tells (the start, the leadership) — in one transaction. Returns the
    /// outbox's status.
    pub async fn open_outbox(
        &self,
        sinks: &[SinkRegistration],
        max_pending: u32,
        told: &[Notice],
    ) -> Result<OutboxStatus, StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::open(pg, sinks, max_pending, told));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        sqlx::query("UPDATE notification_outbox SET max_pending = ? WHERE id = 1")
            .bind(max_pending)
            .execute(&mut *tx)
            .await?;
        let keys: Vec<&str> = sinks.iter().map(|s| s.key.as_str()).collect();
        sqlx::query(
            "DELETE FROM notification_sinks WHERE sink NOT IN (SELECT value FROM json_each(?))",
        )
        .bind(json_text(&keys)?)
        .execute(&mut *tx)
        .await?;
        for sink in sinks {
            let kinds = if sink.kinds.is_empty() {
                None
            } else {
                Some(json_text(&sink.kinds)?)
            };
            sqlx::query(
                "INSERT INTO notification_sinks (sink, label, min_severity, kinds, delivered_seq)
                 VALUES (?, ?, ?, ?, (SELECT COALESCE(MAX(seq), 0) FROM notifications))
                 ON CONFLICT (sink) DO UPDATE SET label = excluded.label,
                     min_severity = excluded.min_severity, kinds = excluded.kinds",
            )
            .bind(&sink.key)
            .bind(&sink.label)
            .bind(sink.min_severity)
            .bind(kinds)
            .execute(&mut *tx)
            .await?;
        }
        for notice in told {
            enqueue(&mut tx, notice).await?;
        }
        let status = read_status(&mut tx).await?;
        tx.commit().await?;
        self.outbox_changed();
        Ok(status)
    }

    /// Queues a notification in a transaction of its own: for conditions observed over time
    /// (a hub down, not ready) and for the last words before a fatal exit.
    pub async fn notify(&self, notice: &Notice) -> Result<(), StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::notify(pg, notice));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        enqueue(&mut tx, notice).await?;
        tx.commit().await?;
        self.outbox_changed();
        Ok(())
    }

    /// The oldest notification `sink` still has to take.
    pub async fn next_notification(&self, sink: &str) -> Result<Option<Notification>, StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::next(pg, sink));
        let mut reader = db.readers.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "SELECT n.seq, n.revision, n.kind, n.severity, n.created_at, n.text, n.data
             FROM notification_sinks AS s JOIN notifications AS n ON n.seq > s.delivered_seq
             WHERE s.sink = ? AND ",
            wanted!(),
            " ORDER BY n.seq LIMIT 1"
        ))
        .bind(sink)
        .fetch_optional(&mut *reader)
        .await?)
    }

    /// `sink` took `notification`: its cursor moves past it. `false` when the notification
    /// changed meanwhile (a "dropped" notification absorbed more drops): it is sent again.
    pub async fn notification_delivered(
        &self,
        sink: &str,
        notification: &Notification,
    ) -> Result<bool, StoreError> {
        let db =
            on_postgres!(self, pg => postgres::outbox::delivered(pg, sink, notification, None));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let moved = advance(&mut tx, sink, notification).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// `sink` refused `notification` for good (a 4xx): its cursor moves past it and the
    /// refusal is kept for `state`. `false` as for [`Store::notification_delivered`].
    pub async fn notification_failed(
        &self,
        sink: &str,
        notification: &Notification,
        status: Option<u16>,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::delivered(pg, sink, notification, Some((status, reason))));
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let moved = advance(&mut tx, sink, notification).await?;
        if moved {
            sqlx::query(
                "INSERT INTO notification_failures (sink, label, seq, kind, status, reason, failed_at)
                 SELECT sink, label, ?, ?, ?, ?, ? FROM notification_sinks WHERE sink = ?",
            )
            .bind(notification.seq)
            .bind(&notification.kind)
            .bind(status)
            .bind(reason)
            .bind(Timestamp::now())
            .bind(sink)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Pending and dropped, for the gauges.
    pub async fn outbox_status(&self) -> Result<OutboxStatus, StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::status(pg));
        let mut reader = db.readers.acquire().await?;
        read_status(&mut reader).await
    }

    /// Forgets at most `limit` notifications older than `older_than` that no sink still has to
    /// take, and refusals older than that, in one short transaction; returns how many
    /// notifications went.
    pub async fn prune_notifications(
        &self,
        older_than: Duration,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let db = on_postgres!(self, pg => postgres::outbox::prune(pg, older_than, limit));
        let cutoff = Timestamp::now().minus(older_than);
        let mut writer = db.writer().await?;
        let mut tx = begin_write(&mut writer).await?;
        let pruned = sqlx::query(concat!(
            "DELETE FROM notifications WHERE seq IN (
                 SELECT n.seq FROM notifications AS n WHERE n.created_at < ?1 AND NOT ",
            pending!(),
            " ORDER BY n.seq LIMIT ?2)"
        ))
        .bind(cutoff)
        .bind(limit)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM notification_failures WHERE failed_at < ?")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(pruned)
    }

    /// A change to follow: it fires after a commit that queued a notification here (a sender
    /// waits on it between polls).
    pub fn outbox_changes(&self) -> tokio::sync::watch::Receiver<()> {
        self.outbox.subscribe()
    }

    /// Wakes the senders: a commit queued a notification.
    pub(super) fn outbox_changed(&self) {
        self.outbox.send_replace(());
    }
}

/// Moves `sink` past `notification` unless the notification changed since it was read.
async fn advance(
    conn: &mut SqliteConnection,
    sink: &str,
    notification: &Notification,
) -> Result<bool, StoreError> {
    let moved = sqlx::query(
        "UPDATE notification_sinks SET delivered_seq = ?2, delivered_at = ?4
         WHERE sink = ?1 AND delivered_seq < ?2
           AND NOT EXISTS (SELECT 1 FROM notifications WHERE seq = ?2 AND revision != ?3)",
    )
    .bind(sink)
    .bind(notification.seq)
    .bind(notification.revision)
    .bind(Timestamp::now())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(moved == 1)
}

/// The outbox for the `state` report.
pub(super) async fn summary(conn: &mut SqliteConnection) -> Result<OutboxSummary, StoreError> {
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
         ORDER BY id DESC LIMIT ?",
    )
    .bind(FAILURES_LISTED)
    .fetch_all(&mut *conn)
    .await?;
    Ok(OutboxSummary {
        status,
        sinks,
        failures,
    })
}
