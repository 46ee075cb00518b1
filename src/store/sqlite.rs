//! The embedded backend: one SQLite file, the default. One writer connection that takes the
//! write lock up front (`BEGIN IMMEDIATE`), a small read-only pool, and a lock file that keeps a
//! second daemon off the same file. The SQL of each table lives with its records, in the domain
//! modules beside this one (`events`, `intents`…); this module opens, checks and migrates.

use std::ffi::OsString;
use std::fs::{File, OpenOptions, TryLockError};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use serde::Serialize;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite as SqliteDb, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use super::dedupe::DedupeIndex;
use super::{StoreError, StoreOptions, Synchronous, Timestamp, json_text};

/// The SQLite migrations compiled into this binary (`migrations/sqlite/`).
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl From<Synchronous> for SqliteSynchronous {
    fn from(level: Synchronous) -> Self {
        match level {
            Synchronous::Full => SqliteSynchronous::Full,
            Synchronous::Normal => SqliteSynchronous::Normal,
            Synchronous::Off => SqliteSynchronous::Off,
        }
    }
}

/// An open SQLite state file.
#[derive(Debug)]
pub(super) struct Sqlite {
    pub(super) path: PathBuf,
    /// The one connection that writes; `None` for a store opened read-only.
    writer: Option<Writer>,
    pub(super) readers: SqlitePool,
    /// Held for the life of the store: another daemon on the same file gets `Locked`.
    _instance_lock: Option<File>,
}

/// When a write transaction's commit reaches the disk, under `synchronous = full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flush {
    /// At its own commit: whatever leaves the process after it (a call to the server, a
    /// notice, an answer to an operator) may rely on it surviving a power loss.
    AtCommit,
    /// With the next commit flushed at its commit — WAL frames reach the file in commit order,
    /// so that flush carries this one too. For bookkeeping nothing outside the process acts on
    /// before such a commit (a workflow opened: its first call is an intent, flushed before it
    /// is sent). A power loss may take it, and nothing was done on it: the level-triggered
    /// runner opens the workflow again. A process crash loses nothing (the OS has the write).
    WithNext,
}

/// The writer connection and how it was opened (to open it again if a failed commit wedged it).
#[derive(Debug)]
struct Writer {
    connection: Mutex<SqliteConnection>,
    options: SqliteConnectOptions,
    /// The configured level, the one an [`Flush::AtCommit`] transaction runs at.
    synchronous: Synchronous,
    /// The level the connection runs at now, one of the `LEVEL_*` values (changed only under
    /// the `connection` lock).
    level: AtomicU8,
    /// Which keys `processed_events` holds; locked only after `connection`.
    dedupe: Mutex<DedupeIndex>,
}

impl Sqlite {
    /// Open (creating if missing) and migrate the database at `path`, taking the
    /// single-instance lock `<path>.lock`; returns it with its instance id.
    pub(super) async fn open(
        path: &Path,
        options: &StoreOptions,
    ) -> Result<(Sqlite, String), StoreError> {
        let path = path.to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Unwritable {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let instance_lock = lock_instance(&path)?;
        check_writable(&path)?;

        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .busy_timeout(options.busy_timeout)
            .foreign_keys(true)
            .synchronous(options.synchronous.into());
        let writer_options = connect
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Statement journals (multi-row upserts) in memory, not in a temp file created and
            // unlinked per statement; and a page cache (16 MiB, 2 MiB by default) that holds the
            // dedupe set's B-tree, whose random-key inserts touch a page each.
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16384");
        let mut writer = SqliteConnection::connect_with(&writer_options)
            .await
            .map_err(|e| StoreError::opening(path.clone(), e))?;
        check_integrity(&mut writer, &path).await?;
        migrate(&mut writer, &path).await?;
        let instance_id = read_instance_id(&mut writer).await?;

        let readers = read_pool(connect, options.read_pool_size);
        let db = Sqlite {
            path,
            writer: Some(Writer {
                connection: Mutex::new(writer),
                options: writer_options,
                synchronous: options.synchronous,
                level: AtomicU8::new(LEVEL_CONFIGURED),
                dedupe: Mutex::default(),
            }),
            readers,
            _instance_lock: Some(instance_lock),
        };
        Ok((db, instance_id))
    }

    /// Open an existing database for reading only, while a daemon may be running on it: no
    /// lock, no migrations, no writes.
    pub(super) async fn open_read_only(path: &Path) -> Result<(Sqlite, String), StoreError> {
        let path = path.to_path_buf();
        if !path.is_file() {
            return Err(StoreError::Missing { path });
        }
        let connect = SqliteConnectOptions::new().filename(&path);
        let readers = read_pool(connect, 1);
        // Read the schema version now: a bad file is reported here, not at the first query, and
        // a newer binary's schema is not misread.
        let mut reader = readers
            .acquire()
            .await
            .map_err(|e| StoreError::opening(path.clone(), e))?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&mut *reader)
            .await
            .map_err(|e| StoreError::opening(path.clone(), e))?;
        if let Some(&version) = applied.iter().find(|v| !MIGRATOR.version_exists(**v)) {
            return Err(StoreError::SchemaTooNew { path, version });
        }
        // A file last opened by an older binary may predate `store_meta`: no identity to show.
        let instance_id = read_instance_id(&mut reader).await.unwrap_or_default();
        drop(reader);
        let db = Sqlite {
            path,
            writer: None,
            readers,
            _instance_lock: None,
        };
        Ok((db, instance_id))
    }

    /// Close the connections cleanly (checkpointing the WAL) and release the lock.
    pub(super) async fn close(mut self) -> Result<(), StoreError> {
        if let Some(writer) = self.writer.take() {
            writer.connection.into_inner().close().await?;
        }
        self.readers.close().await;
        Ok(())
    }

    /// Lock the writer connection; fails for a store opened read-only.
    ///
    /// A connection still marked as inside a transaction once the rollback of a dropped
    /// transaction has run is wedged: when a COMMIT fails after SQLite has already rolled back
    /// (SQLITE_FULL, an I/O error), sqlx keeps its transaction depth and refuses every later
    /// BEGIN. Such a connection is replaced by a fresh one, so a full disk that is freed again
    /// does not need a restart.
    pub(super) async fn writer(&self) -> Result<WriterGuard<'_>, StoreError> {
        self.writer_flushing(Flush::AtCommit).await
    }

    /// [`Sqlite::writer`] for transactions whose commit is flushed as `flush` says.
    pub(super) async fn writer_flushing(
        &self,
        flush: Flush,
    ) -> Result<WriterGuard<'_>, StoreError> {
        let writer = self.writer_parts()?;
        let mut connection = writer.connection.lock().await;
        if connection.is_in_transaction() {
            // The rollback queued by a dropped transaction runs before this statement.
            sqlx::query("SELECT 1").execute(&mut *connection).await?;
            if connection.is_in_transaction() {
                tracing::warn!(path = %self.path.display(), "the writer connection was left inside a failed transaction; opening a fresh one");
                *connection = SqliteConnection::connect_with(&writer.options).await?;
                writer.level.store(LEVEL_CONFIGURED, Ordering::Relaxed);
            }
        }
        // Only `full` flushes at each commit; at a lower level there is nothing to defer.
        let defer = flush == Flush::WithNext && writer.synchronous == Synchronous::Full;
        Ok(WriterGuard {
            connection,
            level: &writer.level,
            wanted: if defer {
                LEVEL_DEFERRING
            } else {
                LEVEL_CONFIGURED
            },
        })
    }

    /// Lock the writer connection, then the dedupe index: the writes that change
    /// `processed_events` hold both, so the index changes in step with the table.
    pub(super) async fn writer_with_dedupe(
        &self,
    ) -> Result<(WriterGuard<'_>, MutexGuard<'_, DedupeIndex>), StoreError> {
        let connection = self.writer().await?;
        let dedupe = self.writer_parts()?.dedupe.lock().await;
        Ok((connection, dedupe))
    }

    fn writer_parts(&self) -> Result<&Writer, StoreError> {
        self.writer.as_ref().ok_or_else(|| StoreError::ReadOnly {
            path: self.path.clone(),
        })
    }
}

/// The writer connection runs at the configured `synchronous` level.
const LEVEL_CONFIGURED: u8 = 0;
/// The writer connection runs at `NORMAL` for [`Flush::WithNext`] transactions.
const LEVEL_DEFERRING: u8 = 1;
/// Not known: a `BEGIN` carrying a level change has not answered, or failed, or was cancelled
/// (its `PRAGMA` may have run).
const LEVEL_UNKNOWN: u8 = 2;

/// The locked writer connection and the flush level its transactions are to run at.
pub(super) struct WriterGuard<'a> {
    connection: MutexGuard<'a, SqliteConnection>,
    /// The connection's level now (the writer's `level`).
    level: &'a AtomicU8,
    /// The level [`begin_write`] sets for this guard's transactions.
    wanted: u8,
}

impl Deref for WriterGuard<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.connection
    }
}

impl DerefMut for WriterGuard<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.connection
    }
}

/// Start a write transaction that takes the write lock up front, so it never fails half-way
/// with SQLITE_BUSY on lock upgrade, at the flush level the writer was taken for: a change of
/// level rides in the `BEGIN`'s own round trip to SQLite's thread. Every write in the SQLite
/// backend starts here.
pub(super) async fn begin_write<'c>(
    writer: &'c mut WriterGuard<'_>,
) -> Result<Transaction<'c, SqliteDb>, sqlx::Error> {
    let level = writer.level;
    let wanted = writer.wanted;
    let changes = level.load(Ordering::Relaxed) != wanted;
    let statement = match (changes, wanted) {
        (false, _) => "BEGIN IMMEDIATE",
        (true, LEVEL_DEFERRING) => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
        // Only a `full` writer ever defers: `full` is its configured level.
        (true, _) => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
    };
    if changes {
        // Unknown until the BEGIN answers: one that fails (busy) or whose caller is cancelled
        // after the PRAGMA ran leaves the level to be set again by the next transaction.
        level.store(LEVEL_UNKNOWN, Ordering::Relaxed);
    }
    let tx = writer.connection.begin_with(statement).await?;
    level.store(wanted, Ordering::Relaxed);
    Ok(tx)
}

/// Take the single-instance lock `<db>.lock`, held until the returned file is dropped.
fn lock_instance(path: &Path) -> Result<File, StoreError> {
    let mut lock_path = OsString::from(path.as_os_str());
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Unwritable {
            path: lock_path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_path_buf(),
        }),
        Err(TryLockError::Error(source)) => Err(StoreError::Unwritable {
            path: lock_path,
            source,
        }),
    }
}

/// Refuse a database file this process cannot write (an immutable file, a read-only mount):
/// SQLite would quietly open it read-only, and every later commit would fail instead.
fn check_writable(path: &Path) -> Result<(), StoreError> {
    if !path.exists() {
        return Ok(());
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source: sqlx::Error::Io(source),
        })
}

async fn read_instance_id(conn: &mut SqliteConnection) -> Result<String, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT instance_id FROM store_meta WHERE id = 1")
            .fetch_one(conn)
            .await?,
    )
}

/// Refuse a damaged file before anything writes to it.
async fn check_integrity(writer: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *writer)
        .await
        .map_err(|e| StoreError::opening(path.to_path_buf(), e))?;
    match problems.as_slice() {
        [ok] if ok == "ok" => Ok(()),
        _ => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: problems.join("; "),
        }),
    }
}

/// Apply the embedded migrations in one `BEGIN IMMEDIATE` transaction: all or nothing, and a
/// refusal (schema too new) rolls back without having written a byte.
async fn migrate(writer: &mut SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let mut tx = writer
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(|e| StoreError::opening(path.to_path_buf(), e))?;
    MIGRATOR
        .run(&mut *tx)
        .await
        .map_err(|e| StoreError::migrating(path.to_path_buf(), e))?;
    tx.commit().await?;
    Ok(())
}

/// The read-only connection pool; connections are made on first use and kept: no idle
/// timeout and no maximum lifetime, so sqlx runs no reaper task. Its reaper can spin a worker
/// thread at 100 % for good when a race wraps the pool's idle count (sqlx issue 3645, seen here
/// in a test run), and reaping local SQLite connections buys nothing.
fn read_pool(connect: SqliteConnectOptions, size: u32) -> SqlitePool {
    SqlitePoolOptions::new()
        .max_connections(size.max(1))
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_lazy_with(connect.read_only(true))
}

/// Run one set-based statement over many rows: the rows go in as a JSON array bound to `?1`
/// (read with `jsonb_each`, in array order) and the commit time as `?2`. One round trip to the
/// SQLite worker per statement instead of one per row is what makes group commit fast.
/// `jsonb_each` rather than `json_each`: its `value` is binary JSON, so each `->>` reads a
/// field in place instead of re-rendering and re-parsing the whole row's text.
pub(super) async fn execute_for_rows<T: Serialize>(
    conn: &mut SqliteConnection,
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

/// The most rows one multi-row `VALUES` statement carries. A batch is split into chunks of
/// powers of two up to it, so a statement has at most eight texts in the connection's
/// prepared-statement cache; `n` rows take one round trip per 128 and one per set bit of the
/// rest (a batch of 100: three).
const MAX_VALUES_ROWS: usize = 128;

/// A query on the SQLite backend, as [`execute_values`] binds it.
pub(super) type SqliteQuery<'q> = sqlx::query::Query<'q, SqliteDb, SqliteArguments>;

/// Run `{head} VALUES {row}, {row}… {tail}` over `rows`, binding each row's parameters with
/// `bind` (every `?` of `row`, in order): the hot path's inserts (the dedupe log, position
/// updates) as prepared multi-row statements. Measured on a 100-row position upsert, the
/// values bound directly take half the time of [`execute_for_rows`]'s JSON array, which
/// SQLite parses again and reads field by field. Rows are inserted in order.
pub(super) async fn execute_values<T>(
    conn: &mut SqliteConnection,
    head: &str,
    row: &str,
    tail: &str,
    rows: &[T],
    bind: impl for<'q> Fn(SqliteQuery<'q>, &T) -> SqliteQuery<'q>,
) -> Result<(), StoreError> {
    let mut rest = rows;
    while !rest.is_empty() {
        let len = 1 << rest.len().min(MAX_VALUES_ROWS).ilog2();
        let (chunk, after) = rest.split_at(len);
        let sql = format!("{head} VALUES {}{tail}", vec![row; len].join(", "));
        let query = chunk
            .iter()
            .fold(sqlx::query(sqlx::AssertSqlSafe(sql)), |query, row| {
                bind(query, row)
            });
        query.execute(&mut *conn).await?;
        rest = after;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection's `PRAGMA synchronous`: 0 off, 1 normal, 2 full.
    async fn level(connection: &mut SqliteConnection) -> i64 {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(connection)
            .await
            .expect("PRAGMA synchronous answers")
    }

    async fn opened(synchronous: Synchronous) -> (tempfile::TempDir, Sqlite) {
        let dir = tempfile::tempdir().expect("temp dir");
        let options = StoreOptions {
            synchronous,
            // A test that holds the write lock elsewhere waits this long, not the default.
            busy_timeout: std::time::Duration::from_millis(100),
            ..StoreOptions::default()
        };
        let (db, _) = Sqlite::open(&dir.path().join("state.db"), &options)
            .await
            .expect("store opens");
        (dir, db)
    }

    /// The `PRAGMA synchronous` a transaction on a writer taken for `flush` runs at.
    async fn level_in_transaction(db: &Sqlite, flush: Flush) -> i64 {
        let mut writer = db.writer_flushing(flush).await.expect("writer");
        let mut tx = begin_write(&mut writer).await.expect("begins");
        let level = level(&mut tx).await;
        tx.commit().await.expect("commits");
        level
    }

    #[tokio::test]
    async fn a_deferred_transaction_never_leaves_the_writer_below_the_configured_level() {
        let (_dir, db) = opened(Synchronous::Full).await;
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 2);
        let deferred = level_in_transaction(&db, Flush::WithNext).await;
        assert_eq!(deferred, 1, "a WithNext commit is not flushed on its own");
        assert_eq!(level_in_transaction(&db, Flush::WithNext).await, 1);
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 2);
        // A writer taken and let go without a transaction changes nothing.
        drop(db.writer_flushing(Flush::WithNext).await.expect("w"));
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 2);
    }

    #[tokio::test]
    async fn a_begin_that_failed_after_changing_the_level_sets_it_again() {
        let (dir, db) = opened(Synchronous::Full).await;
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 2);
        // Another connection holds the write lock: the writer's BEGIN IMMEDIATE times out
        // after the PRAGMA before it lowered the level.
        let mut other = SqliteConnection::connect_with(
            &SqliteConnectOptions::new().filename(dir.path().join("state.db")),
        )
        .await
        .expect("second connection");
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .expect("write lock");
        {
            let mut writer = db.writer_flushing(Flush::WithNext).await.expect("writer");
            assert!(begin_write(&mut writer).await.is_err(), "busy");
        }
        sqlx::query("ROLLBACK")
            .execute(&mut other)
            .await
            .expect("lock released");
        assert_eq!(
            level_in_transaction(&db, Flush::AtCommit).await,
            2,
            "the next flushed transaction is flushed"
        );
    }

    #[tokio::test]
    async fn a_multi_row_insert_takes_every_row_in_order_whatever_the_count() {
        let (_dir, db) = opened(Synchronous::Full).await;
        let mut writer = db.writer().await.expect("writer");
        sqlx::query("CREATE TEMP TABLE numbers (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
            .execute(&mut *writer)
            .await
            .expect("table");
        // 0, 1, a power of two, and 128 + 128 + 32 + 8 + 4 + 1.
        for count in [0_i64, 1, 64, 301] {
            let rows: Vec<i64> = (0..count).map(|n| n * 7).collect();
            execute_values(
                &mut writer,
                "INSERT INTO numbers (n)",
                "(?)",
                "",
                &rows,
                |query, n| query.bind(*n),
            )
            .await
            .expect("inserted");
            let stored: Vec<i64> = sqlx::query_scalar("SELECT n FROM numbers ORDER BY id")
                .fetch_all(&mut *writer)
                .await
                .expect("read back");
            assert_eq!(stored, rows, "{count} rows");
            sqlx::query("DELETE FROM numbers")
                .execute(&mut *writer)
                .await
                .expect("emptied");
        }
    }

    #[tokio::test]
    async fn below_full_there_is_nothing_to_defer() {
        let (_dir, db) = opened(Synchronous::Normal).await;
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 1);
        assert_eq!(level_in_transaction(&db, Flush::WithNext).await, 1);
        assert_eq!(level_in_transaction(&db, Flush::AtCommit).await, 1);
    }
}
