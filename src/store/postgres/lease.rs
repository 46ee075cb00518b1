//! The lease statements. Every instant comes from the server's clock
//! (`clock_timestamp()` in unix milliseconds), so the daemons' clocks never decide who leads.

use std::time::Duration;

use sqlx::Acquire;

use super::{Postgres, outbox};
use crate::notifications::notice::{self, Kind};
use crate::store::{LeaseGrant, LeaseRecord, LeaseRequest, StoreError, Timestamp};

/// The server's clock in unix milliseconds.
macro_rules! server_now {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Milliseconds of a duration, for the statements.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Takes the lease if nobody holds it or it expired; the epoch grows by one.
pub(in crate::store) async fn acquire(
    db: &Postgres,
    request: &LeaseRequest,
) -> Result<Option<LeaseGrant>, StoreError> {
    let mut conn = db.lease_pool().acquire().await?;
    let mut tx = conn.begin().await?;
    // A takeover waits for the old holder's write in flight (it holds the row FOR SHARE) —
    // but not for longer than a third of the ttl: the next try comes soon enough.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {}",
        millis(request.ttl / 3).max(1)
    )))
    .execute(&mut *tx)
    .await?;
    let granted: Option<(i64, Timestamp)> = sqlx::query_as(concat!(
        "INSERT INTO lease (grp, holder, epoch, acquired_at, renewed_at, expires_at)
         SELECT $1, $2, 1, now_ms, now_ms, now_ms + $3 FROM (SELECT ",
        server_now!(),
        " AS now_ms) AS clock
         ON CONFLICT (grp) DO UPDATE SET
             holder = excluded.holder,
             epoch = lease.epoch + 1,
             acquired_at = excluded.acquired_at,
             renewed_at = excluded.renewed_at,
             expires_at = excluded.expires_at
         WHERE lease.holder IS NULL OR lease.expires_at <= excluded.acquired_at
         RETURNING epoch, expires_at"
    ))
    .bind(&request.group)
    .bind(&request.holder)
    .bind(millis(request.ttl))
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some((epoch, expires_at)) = granted else {
        db.fence().lose(&request.group);
        return Ok(None);
    };
    // The previous holder wrote the dedupe table: read it again before the first write.
    if let Some(writer) = &db.writer {
        writer.lock().await.invalidate();
    }
    db.fence().hold(&request.group, epoch);
    Ok(Some(LeaseGrant {
        group: request.group.clone(),
        holder: request.holder.clone(),
        epoch,
        expires_at,
    }))
}

/// Queues the `standby` notification of `request.holder` (at start, or after the leadership
/// `lost`), naming the lease's holder; `false` when no registered sink wants it (yet: on a
/// fresh database the leader's first term registers the sinks). The one write a standby makes,
/// outside the fence: it locks the lease row `FOR UPDATE`, which waits for the leader's write
/// in flight (those hold it `FOR SHARE`) and holds the next one back until it commits, so the
/// notification's seq becomes visible in order with the leader's.
pub(in crate::store) async fn tell_standby(
    db: &Postgres,
    request: &LeaseRequest,
    lost: Option<&str>,
) -> Result<bool, StoreError> {
    let mut conn = db.lease_pool().acquire().await?;
    let severity = notice::standby_severity(lost.is_some());
    if !outbox::wanted(&mut conn, Kind::Standby, severity).await? {
        return Ok(false);
    }
    let mut tx = conn.begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {}",
        millis(request.ttl / 3).max(1)
    )))
    .execute(&mut *tx)
    .await?;
    let lease: Option<(Option<String>, i64)> = sqlx::query_as(concat!(
        "SELECT CASE WHEN expires_at > ",
        server_now!(),
        " THEN holder END, epoch FROM lease WHERE grp = $1 FOR UPDATE"
    ))
    .bind(&request.group)
    .fetch_optional(&mut *tx)
    .await?;
    let (leader, epoch) = lease.unwrap_or_default();
    let told = notice::standby(
        &request.group,
        &request.holder,
        leader.as_deref(),
        epoch,
        lost,
    );
    let queued = outbox::enqueue(&mut tx, &told).await?;
    tx.commit().await?;
    if queued {
        db.outbox_changed();
    }
    Ok(queued)
}

/// Extends our lease; `None` when its epoch moved on (then writes are refused).
pub(in crate::store) async fn renew(
    db: &Postgres,
    grant: &LeaseGrant,
    ttl: Duration,
) -> Result<Option<Timestamp>, StoreError> {
    let renewed: Option<Timestamp> = sqlx::query_scalar(concat!(
        "UPDATE lease SET renewed_at = ",
        server_now!(),
        ", expires_at = ",
        server_now!(),
        " + $4
         WHERE grp = $1 AND epoch = $2 AND holder = $3
         RETURNING expires_at"
    ))
    .bind(&grant.group)
    .bind(grant.epoch)
    .bind(&grant.holder)
    .bind(millis(ttl))
    .fetch_optional(db.lease_pool())
    .await?;
    if renewed.is_none() {
        db.fence().lose(&grant.group);
    }
    Ok(renewed)
}

/// Gives our lease up: expired now, no holder.
pub(in crate::store) async fn release(db: &Postgres, grant: &LeaseGrant) -> Result<(), StoreError> {
    db.fence().lose(&grant.group);
    sqlx::query(concat!(
        "UPDATE lease SET holder = NULL, expires_at = ",
        server_now!(),
        " WHERE grp = $1 AND epoch = $2 AND holder = $3"
    ))
    .bind(&grant.group)
    .bind(grant.epoch)
    .bind(&grant.holder)
    .execute(db.lease_pool())
    .await?;
    Ok(())
}

/// Every group's lease, with the server's clock at the read.
pub(in crate::store) async fn all(db: &Postgres) -> Result<Vec<LeaseRecord>, StoreError> {
    Ok(sqlx::query_as(concat!(
        "SELECT grp, holder, epoch, acquired_at, renewed_at, expires_at, ",
        server_now!(),
        " AS read_at FROM lease ORDER BY grp"
    ))
    .fetch_all(&mut *db.reader().await?)
    .await?)
}
