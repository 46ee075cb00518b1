//! The durable state store: everything a restart must not lose (event cursor, dedupe set,
//! intents, prepare jobs, positions, orders, signals, workflows, the holes in the server's
//! history it met, the trading state with the operator actions, and the notification outbox),
//! in one of two backends behind the same API:
//!
//! * **SQLite** (the default, `database.path`): one file, one writer connection with
//!   `BEGIN IMMEDIATE`, a small read-only pool, a lock file against a second daemon;
//! * **PostgreSQL** (`database.url`): a shared database for an active/standby pair. Every
//!   write transaction checks the fencing token — the lease epoch this store was granted — in
//!   the same transaction, so a daemon that lost its lease cannot commit anything (see
//!   [`Store::acquire_lease`]).
//!
//! The whole exactly-once story lives in [`Store::apply_events`]: one transaction records the
//! event keys, applies their effects and advances the cursor, so a crash at any instant either
//! replays an event (the dedupe set skips it) or never saw it (replay brings it). No SQL lives
//! outside this module.
//!
//! Layout: the domain modules (`events`, `intents`, `jobs`…) hold the records, the public
//! methods and the SQLite statements; each method hands over to `postgres/<module>.rs` when the
//! store is PostgreSQL ([`on_postgres!`]). Porting a table is therefore: its migration in
//! `migrations/postgres/`, its statements in `postgres/<module>.rs`, one hand-over line per
//! method. `sqlite` and `postgres/mod.rs` open, check and migrate their backend.

mod dedupe;
mod error;
mod events;
mod fold;
mod history;
mod intents;
mod jobs;
mod lease;
mod location;
mod operator;
mod orders;
mod outbox;
mod positions;
mod postgres;
pub mod report;
mod signals;
mod sqlite;
mod summary;
mod time;
mod workflows;

use std::path::Path;
use std::time::Duration;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{ColumnIndex, Decode, Row, Type};
use tokio::sync::watch;

use sqlite::{Flush, Sqlite, WriterGuard, begin_write, execute_for_rows, execute_values};

pub use error::StoreError;
pub use events::{BatchOutcome, Effect, EventRecord, QuarantinedEvent, RecordOutcome};
pub use history::{GapForm, GapResolution, HistoryGap, HistoryGapRecord, Resync, ResyncSummary};
pub use intents::{IntentRecord, IntentState, NewIntent, Recorded};
pub use jobs::{JobStatus, PrepareJobRecord, PrepareJobUpdate};
pub use lease::{LeaseGrant, LeaseRecord, LeaseRequest};
pub use location::{Location, PostgresLocation, is_plain_identifier};
pub use operator::{
    ActionKind, ActionSource, CancelRefusal, OperatorAction, PnlMovement, StateChange, TradingState,
};
pub use orders::{OrderRecord, OrderUpdate};
pub use outbox::{
    Notification, NotificationFailure, OutboxStatus, OutboxSummary, SinkProgress, SinkRegistration,
};
pub use positions::{
    LegRecord, LegUpdate, OpenPosition, PositionRecord, PositionState, PositionUpdate,
};
pub use signals::{SignalRecord, SignalSource, SignalState, SignalUpdate};
pub use summary::{StateCount, StoreSummary};
pub use time::Timestamp;
pub use workflows::{
    LatestAttempt, NewWorkflow, StateCounts, WorkflowChange, WorkflowRecord, WorkflowState,
};

/// How hard SQLite works to make a commit durable (`PRAGMA synchronous`).
///
/// `Full` is the default because an order intent must survive a power loss, not just a crash.
/// PostgreSQL's durability is the server's (`synchronous_commit`, replication).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: survives power loss.
    #[default]
    Full,
    /// fsync at checkpoints only: survives a process crash, may lose the last commits on power loss.
    Normal,
    /// No fsync: for tests and benchmarks only.
    Off,
}

/// Tunables of the state store, mapped from the `database.*` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Durability of each commit (SQLite).
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock held by another connection before failing.
    pub busy_timeout: Duration,
    /// Connections in the read-only pool (readers never block the writer).
    pub read_pool_size: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            busy_timeout: Duration::from_secs(5),
            read_pool_size: 2,
        }
    }
}

/// Handle to the state database. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct Store {
    backend: Backend,
    /// This database's identity (`store_meta`), part of every idempotency key derived from it.
    instance_id: String,
    /// Fires after a commit that queued a notification (the senders follow it).
    outbox: watch::Sender<()>,
}

/// Where the state is kept. (Boxed: one store per process, reached through a pointer either way.)
#[derive(Debug)]
enum Backend {
    Sqlite(Box<Sqlite>),
    Postgres(Box<postgres::Postgres>),
}

/// The SQLite backend of `$store`, or — when it is PostgreSQL — return from the enclosing
/// method with `postgres::$call` on it (awaited). Every public method starts with it.
macro_rules! on_postgres {
    ($store:expr, $pg:ident => $call:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite(db) => db,
            $crate::store::Backend::Postgres($pg) => return $call.await,
        }
    };
}
use on_postgres;

impl Store {
    /// Open (creating if missing) and migrate the SQLite database at `path`, taking the
    /// single-instance lock `<path>.lock`.
    ///
    /// A file this binary cannot safely use (not a database, corrupt, migrated by a newer
    /// binary) is reported with a typed error and left byte-for-byte untouched.
    pub async fn open(path: impl AsRef<Path>, options: &StoreOptions) -> Result<Store, StoreError> {
        let (db, instance_id) = Sqlite::open(path.as_ref(), options).await?;
        Ok(Store {
            backend: Backend::Sqlite(Box::new(db)),
            instance_id,
            outbox: watch::Sender::new(()),
        })
    }

    /// Open an existing SQLite database for reading only, while a daemon may be running on it
    /// (the `state` subcommand): no lock, no migrations, no writes.
    pub async fn open_read_only(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let (db, instance_id) = Sqlite::open_read_only(path.as_ref()).await?;
        Ok(Store {
            backend: Backend::Sqlite(Box::new(db)),
            instance_id,
            outbox: watch::Sender::new(()),
        })
    }

    /// Open the store at `location` (either backend), migrating it. On PostgreSQL, a server
    /// that cannot be reached now is [`StoreError::Unreachable`] ([`StoreError::is_transient`]):
    /// the daemon tries again with backoff.
    pub async fn connect(location: &Location, options: &StoreOptions) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open(path, options).await,
            Location::Postgres(pg) => {
                let outbox = watch::Sender::new(());
                let (db, instance_id) =
                    postgres::Postgres::open(pg, options, outbox.clone()).await?;
                Ok(Store {
                    backend: Backend::Postgres(Box::new(db)),
                    instance_id,
                    outbox,
                })
            }
        }
    }

    /// Open the store at `location` for reading only (the `state` subcommand): nothing is
    /// created, migrated or written.
    pub async fn connect_read_only(location: &Location) -> Result<Store, StoreError> {
        match location {
            Location::Sqlite(path) => Store::open_read_only(path).await,
            Location::Postgres(pg) => {
                let outbox = watch::Sender::new(());
                let (db, instance_id) =
                    postgres::Postgres::open_read_only(pg, outbox.clone()).await?;
                Ok(Store {
                    backend: Backend::Postgres(Box::new(db)),
                    instance_id,
                    outbox,
                })
            }
        }
    }

    /// Drops a PostgreSQL schema and every table in it: the benchmark's scratch schemas. (An
    /// SQLite database is a file: its owner removes it.)
    pub async fn drop_schema(location: &PostgresLocation) -> Result<(), StoreError> {
        postgres::drop_schema(location).await
    }

    /// This database's identity: a short random id created with the database, part of every
    /// idempotency key derived from it, so a fresh database never reuses an old key.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The database as an operator names it: the SQLite file, or the PostgreSQL server,
    /// database and schema (never a password).
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Sqlite(db) => db.path.display().to_string(),
            Backend::Postgres(db) => db.describe().to_owned(),
        }
    }

    /// Whether this store is shared between daemons (PostgreSQL), so leadership needs a lease.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// Close the connections cleanly (checkpointing SQLite's WAL) and release the lock.
    /// Dropping the store also releases everything; this only waits for it.
    pub async fn close(self) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite(db) => (*db).close().await,
            Backend::Postgres(db) => {
                (*db).close().await;
                Ok(())
            }
        }
    }
}

/// `Ok` if an update touched a row, `NotFound` otherwise.
fn found(rows: u64, what: &'static str, id: impl ToString) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound {
            what,
            id: id.to_string(),
        })
    } else {
        Ok(())
    }
}

/// Serialize statement input to JSON text.
fn json_text<T: Serialize + ?Sized>(value: &T) -> Result<String, sqlx::Error> {
    serde_json::to_string(value).map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

/// Serialize a decimal as its exact text, whatever serde features `rust_decimal` was built with.
fn decimal_text<S: serde::Serializer>(value: &Option<Decimal>, out: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(decimal) => out.collect_str(decimal),
        None => out.serialize_none(),
    }
}

/// Read a decimal kept as TEXT (in both backends: it round-trips exactly); a value that does
/// not parse is a decode error, not a panic.
fn decimal_column<'r, R>(row: &'r R, column: &'r str) -> Result<Option<Decimal>, sqlx::Error>
where
    R: Row,
    &'r str: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<Option<String>, _>(column)?
        .map(|text| text.parse::<Decimal>())
        .transpose()
        .map_err(|e| sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: Box::new(e),
        })
}
