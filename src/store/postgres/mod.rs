//! The shared backend: PostgreSQL, for an active/standby pair of daemons. Every table of the
//! SQLite backend, with the same meaning (instants as BIGINT unix milliseconds, decimals as
//! TEXT, JSON as JSONB), in its own schema (`database.schema`, created if missing).
//!
//! Writes are serialized within the process, as in SQLite (one write transaction at a time,
//! which also keeps the in-memory dedupe index in step with its table), and fenced across
//! processes ([`fence`]): each write transaction first locks the lease row `FOR SHARE` at the
//! epoch this process was granted, so a takeover (which updates that row) waits for a write in
//! flight to end, and every write that starts after it finds the epoch moved and commits
//! nothing. One statement per kind of row, the rows bound as one JSONB array read with
//! `jsonb_to_recordset`, as the SQLite backend does with `jsonb_each`.

pub(super) mod events;
mod fence;
pub(super) mod history;
pub(super) mod intents;
pub(super) mod jobs;
pub(super) mod lease;
pub(super) mod operator;
pub(super) mod orders;
pub(super) mod outbox;
pub(super) mod positions;
pub(super) mod signals;
pub(super) mod summary;
pub(super) mod workflows;

use std::collections::HashMap;
use std::hash::Hash;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Postgres as Pg, Transaction};
use tokio::sync::{Mutex, MutexGuard, watch};

pub(super) use fence::Fence;

use super::dedupe::DedupeIndex;
use super::{PostgresLocation, StoreError, StoreOptions, Timestamp, json_text};
use crate::notifications::Notice;

/// The PostgreSQL migrations compiled into this binary (`migrations/postgres/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A session idle inside a transaction this long is ended by the server, releasing its locks:
/// a leader frozen in the middle of a write (SIGSTOP, a stalled VM) cannot hold the lease row
/// locked and so delay a takeover for longer than this. The daemon's transactions never wait
/// between statements for anything but the network.
const IDLE_IN_TRANSACTION: Duration = Duration::from_secs(3);

/// How long a connection attempt may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// An open PostgreSQL store.
#[derive(Debug)]
pub(in crate::store) struct Postgres {
    /// Reads and the serialized writes.
    pool: PgPool,
    /// The lease statements, on their own connection: a busy read pool never delays a renewal.
    lease_pool: PgPool,
    describe: String,
    /// One write transaction at a time; it also guards the dedupe index.
    writer: Option<Mutex<DedupeIndex>>,
    fence: Fence,
    /// The store's outbox signal: fired after a commit that queued a notification.
    outbox: watch::Sender<()>,
}

/// A write transaction, fenced, holding the writer lock and the dedupe index.
pub(super) struct Write<'a> {
    pub(super) tx: Transaction<'static, Pg>,
    pub(super) dedupe: MutexGuard<'a, DedupeIndex>,
    outbox: &'a watch::Sender<()>,
    /// Whether a notification was queued (the senders are woken after the commit).
    queued: bool,
}

impl Write<'_> {
    /// Queues `notice` in this transaction (`store::outbox::enqueue` on PostgreSQL): delivered
    /// if and only if the transaction commits.
    pub(super) async fn notify(&mut self, notice: &Notice) -> Result<(), StoreError> {
        if outbox::enqueue(&mut self.tx, notice).await? {
            self.queued = true;
        }
        Ok(())
    }

    /// Commits, then wakes the senders if a notification was queued.
    pub(super) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        if self.queued {
            self.outbox.send_replace(());
        }
        Ok(())
    }
}

impl Postgres {
    /// Connect, create the schema if missing and migrate it; returns the store and its instance
    /// id.
    pub(in crate::store) async fn open(
        location: &PostgresLocation,
        options: &StoreOptions,
        outbox: watch::Sender<()>,
    ) -> Result<(Postgres, String), StoreError> {
        let describe = location.describe();
        let connect = connect_options(location, options)?;
        let pool = pool(connect.clone(), options.read_pool_size + 1);
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| StoreError::connecting(&describe, e))?;
        // Daemons of a failover group start together: `CREATE SCHEMA IF NOT EXISTS` is not
        // safe against a concurrent one (the loser fails on the catalog's unique index), so
        // the schema is created under a session lock of its name, released once migrated (or
        // with the session, if this fails: the pool is dropped).
        let lock = format!("mesolive-supervisor schema {}", location.schema);
        sqlx::query("SELECT pg_advisory_lock(hashtext($1))")
            .bind(&lock)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::connecting(&describe, e))?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            location.schema
        )))
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::connecting(&describe, e))?;
        MIGRATOR
            .run(&mut *conn)
            .await
            .map_err(|e| migrating(&describe, e))?;
        sqlx::query("SELECT pg_advisory_unlock(hashtext($1))")
            .bind(&lock)
            .execute(&mut *conn)
            .await?;
        let instance_id = read_instance_id(&mut conn).await?;
        drop(conn);
        let db = Postgres {
            lease_pool: pool_of_one(connect),
            pool,
            describe,
            writer: Some(Mutex::default()),
            fence: Fence::default(),
            outbox,
        };
        Ok((db, instance_id))
    }

    /// Connect for reading only (the `state` subcommand): nothing is created or migrated; a
    /// schema migrated by a newer binary is refused.
    pub(in crate::store) async fn open_read_only(
        location: &PostgresLocation,
        outbox: watch::Sender<()>,
    ) -> Result<(Postgres, String), StoreError> {
        let describe = location.describe();
        let connect = connect_options(location, &StoreOptions::default())?;
        let pool = pool(connect.clone(), 1);
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| StoreError::connecting(&describe, e))?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut *conn)
            .await
            .map_err(|_| StoreError::Missing {
                path: describe.clone().into(),
            })?;
        if let Some(&version) = applied.iter().find(|v| !MIGRATOR.version_exists(**v)) {
            return Err(StoreError::SchemaTooNew {
                path: describe.into(),
                version,
            });
        }
        let instance_id = read_instance_id(&mut conn).await.unwrap_or_default();
        drop(conn);
        let db = Postgres {
            lease_pool: pool_of_one(connect),
            pool,
            describe,
            writer: None,
            fence: Fence::default(),
            outbox,
        };
        Ok((db, instance_id))
    }

    /// The server, database and schema.
    pub(in crate::store) fn describe(&self) -> &str {
        &self.describe
    }

    /// The fencing state shared by every write.
    pub(in crate::store) fn fence(&self) -> &Fence {
        &self.fence
    }

    /// Close every connection.
    pub(in crate::store) async fn close(self) {
        self.pool.close().await;
        self.lease_pool.close().await;
    }

    /// A connection for reads.
    pub(super) async fn reader(&self) -> Result<sqlx::pool::PoolConnection<Pg>, StoreError> {
        Ok(self.pool.acquire().await?)
    }

    /// Begin a write: the writer lock, a transaction, and the fencing check in it. Refused
    /// with [`StoreError::LeadershipLost`] (nothing written) when the lease moved on.
    pub(super) async fn begin_write(&self) -> Result<Write<'_>, StoreError> {
        let writer = self.writer.as_ref().ok_or_else(|| StoreError::ReadOnly {
            path: self.describe.clone().into(),
        })?;
        let dedupe = writer.lock().await;
        let mut tx = self.pool.begin().await?;
        self.fence.check(&mut tx).await?;
        Ok(Write {
            tx,
            dedupe,
            outbox: &self.outbox,
            queued: false,
        })
    }

    /// Wakes the senders: a commit outside [`Write`] queued a notification (a standby's lease
    /// transaction).
    pub(super) fn outbox_changed(&self) {
        self.outbox.send_replace(());
    }

    /// The connection for lease statements.
    pub(super) fn lease_pool(&self) -> &PgPool {
        &self.lease_pool
    }
}

/// [`crate::store::Store::drop_schema`].
pub(in crate::store) async fn drop_schema(location: &PostgresLocation) -> Result<(), StoreError> {
    let describe = location.describe();
    let pool = pool_of_one(connect_options(location, &StoreOptions::default())?);
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS {} CASCADE",
        location.schema
    )))
    .execute(&pool)
    .await
    .map_err(|e| StoreError::connecting(&describe, e))?;
    pool.close().await;
    Ok(())
}

/// The connection settings: the URL (with its `sslmode` and `sslrootcert`), the password kept
/// apart, the schema as search path, and the server-side timeouts.
fn connect_options(
    location: &PostgresLocation,
    options: &StoreOptions,
) -> Result<PgConnectOptions, StoreError> {
    let mut connect =
        PgConnectOptions::from_str(&location.url).map_err(|e| StoreError::InvalidUrl {
            reason: e.to_string(),
        })?;
    if let Some(password) = &location.password {
        connect = connect.password(password);
    }
    let millis = |d: Duration| d.as_millis().to_string();
    Ok(connect.application_name("mesolive-supervisor").options([
        ("search_path", location.schema.clone()),
        ("lock_timeout", millis(options.busy_timeout)),
        (
            "idle_in_transaction_session_timeout",
            millis(IDLE_IN_TRANSACTION),
        ),
    ]))
}

/// The pool for reads and the serialized writes: connections made on first use and kept, as
/// in the SQLite backend (`sqlite::read_pool`): no idle timeout and no maximum lifetime, so
/// sqlx runs no reaper task (its maintenance task can spin a worker thread at 100 % for good,
/// sqlx issue 3645). What a reaper would bring is had otherwise: a connection the server or the
/// network dropped is found dead when next taken from the pool (sqlx tests an idle connection
/// before handing it out) and replaced; the server ends sessions left idle in a transaction;
/// and a PostgreSQL failover ends the old primary's sessions.
fn pool(connect: PgConnectOptions, size: u32) -> PgPool {
    kept_connections(size.max(2)).connect_lazy_with(connect)
}

/// The lease statements' pool: one connection, kept like [`pool`]'s.
fn pool_of_one(connect: PgConnectOptions) -> PgPool {
    kept_connections(1).connect_lazy_with(connect)
}

fn kept_connections(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(CONNECT_TIMEOUT)
        .idle_timeout(None)
        .max_lifetime(None)
}

fn migrating(database: &str, error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::VersionMissing(version) => StoreError::SchemaTooNew {
            path: database.into(),
            version,
        },
        MigrateError::Execute(inner) => StoreError::connecting(database, inner),
        other => StoreError::Migrate {
            path: database.into(),
            source: other,
        },
    }
}

async fn read_instance_id(conn: &mut PgConnection) -> Result<String, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT instance_id FROM store_meta WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// Run one set-based statement over many rows: the rows go in as a JSON array bound to `$1`
/// (read with `jsonb_to_recordset`) and the commit time as `$2`.
pub(super) async fn execute_for_rows<T: Serialize>(
    conn: &mut PgConnection,
    sql: &'static str,
    rows: &[T],
    now: Timestamp,
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    sqlx::query(sql)
        .bind(json_text(rows)?)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Run an upsert over many rows in rounds whose keys are unique: PostgreSQL refuses to update
/// one row twice in a statement, where SQLite applies the rows one after the other. Round `k`
/// holds each key's `k`-th row, so the rounds in order give the same result as the rows in
/// order (rows of different keys do not interact). Almost every batch is one round.
pub(super) async fn upsert_in_rounds<T: Serialize, K: Eq + Hash>(
    conn: &mut PgConnection,
    sql: &'static str,
    rows: &[T],
    key: impl Fn(&T) -> K,
    now: Timestamp,
) -> Result<(), StoreError> {
    for round in rounds(rows, key) {
        execute_for_rows(&mut *conn, sql, &round, now).await?;
    }
    Ok(())
}

/// `rows` split into rounds of distinct keys, each row in the round after its key's previous
/// row, in order.
fn rounds<T, K: Eq + Hash>(rows: &[T], key: impl Fn(&T) -> K) -> Vec<Vec<&T>> {
    let mut seen: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut rounds: Vec<Vec<&T>> = Vec::new();
    for row in rows {
        let count = seen.entry(key(row)).or_default();
        if rounds.len() <= *count {
            rounds.push(Vec::new());
        }
        rounds[*count].push(row);
        *count += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_hold_each_key_once_and_keep_each_keys_order() {
        let rows = [(1, 'a'), (2, 'b'), (1, 'c'), (1, 'd'), (3, 'e'), (2, 'f')];
        let rounds = rounds(&rows, |(key, _)| *key);
        let shown: Vec<Vec<char>> = rounds
            .iter()
            .map(|round| round.iter().map(|(_, v)| *v).collect())
            .collect();
        assert_eq!(shown, vec![vec!['a', 'b', 'e'], vec!['c', 'f'], vec!['d']]);
        assert_eq!(super::rounds(&[(); 0], |_| 0).len(), 0);
    }
}
