//! Why the state store refused or failed: each open-time error names the file and what
//! the operator should do, because it is usually the last line the daemon prints.

use std::path::PathBuf;

use super::intents::IntentState;

/// Everything that can go wrong in the state store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory or the lock file cannot be created (permissions, a file in the way).
    #[error(
        "cannot create {path}: {source}; expected a writable directory for the state database \
         (check database.path and the directory's owner and mode)"
    )]
    Unwritable {
        /// The directory or file that could not be created.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// SQLite cannot open or write the database file itself (permissions, a directory in the way).
    #[error(
        "cannot open the state database {path}: {source}; expected a readable and writable \
         SQLite file (check database.path and the file's owner and mode)"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: sqlx::Error,
    },

    /// `open_read_only` was pointed at a file that does not exist.
    #[error(
        "the state database {path} does not exist; expected the file written by \
         `mesolive-supervisor run` (check database.path)"
    )]
    Missing {
        /// The database file.
        path: PathBuf,
    },

    /// Another process holds the single-instance lock of this database.
    #[error(
        "the state database {path} is in use by another mesolive-supervisor (lock file \
         {path}.lock is held); stop that process first, or point database.path elsewhere"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },

    /// Another process held an SQLite write lock on the file for longer than
    /// `database.busy_timeout` while the store was being opened.
    #[error(
        "the state database {path} is locked by another process (an SQLite write lock was held \
         longer than database.busy_timeout); retry later, or find the process that holds it \
         (e.g. `fuser {path}`)"
    )]
    Busy {
        /// The database file.
        path: PathBuf,
    },

    /// The file is not an SQLite database at all.
    #[error(
        "{path} is not an SQLite database; expected the state database of mesolive-supervisor \
         (the file was left untouched: move it aside or fix database.path)"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The file is an SQLite database whose pages are damaged.
    #[error(
        "the state database {path} is corrupt ({detail}); the file was left untouched: restore \
         it from a backup or move it aside to start from an empty state"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite's integrity check or error said.
        detail: String,
    },

    /// The database was migrated by a newer binary; running on it could corrupt its meaning.
    /// (`path` is the file, or the PostgreSQL server, database and schema.)
    #[error(
        "the state database {path} has schema migration {version}, which this binary does not \
         know; expected a database written by this or an older mesolive-supervisor (upgrade the \
         binary; the file was left untouched)"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The unknown migration version found in the file.
        version: i64,
    },

    /// Applying the embedded migrations failed for another reason.
    #[error("cannot migrate the state database {path}: {source}")]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What the migrator said.
        source: sqlx::migrate::MigrateError,
    },

    /// A write was attempted through a store opened with `open_read_only`.
    #[error("the state database {path} was opened read-only; writes need `Store::open`")]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },

    /// An intent was asked to move to a state its current state does not allow
    /// (for example, sending again an intent that already completed).
    #[error("intent {key} cannot move from {from} to {to}")]
    IntentTransition {
        /// The idempotency key.
        key: String,
        /// The state the intent is in.
        from: IntentState,
        /// The state that was asked for.
        to: IntentState,
    },

    /// A row that a method updates does not exist.
    #[error("no {what} with id {id} in the state database")]
    NotFound {
        /// What kind of row (intent, prepare job, position…).
        what: &'static str,
        /// Its id.
        id: String,
    },

    /// `database.url` cannot be used as a PostgreSQL connection string.
    #[error(
        "database.url: {reason}; expected postgres://user@host:5432/dbname (the password in \
         database.password_file or PGPASSWORD, never in the URL)"
    )]
    InvalidUrl {
        /// What is wrong with it.
        reason: String,
    },

    /// The PostgreSQL server cannot be reached now (refused, timed out, starting up, shutting
    /// down): transient, the daemon tries again with backoff.
    #[error("the state database {database} cannot be reached: {source}; retrying")]
    Unreachable {
        /// The server, database and schema (never the password).
        database: String,
        /// What the driver said.
        source: sqlx::Error,
    },

    /// The PostgreSQL server answered and refused us: wrong password, no such database or
    /// role, no right to create the schema, a certificate that does not verify. Retrying cannot
    /// help; fix the settings.
    #[error(
        "the state database {database} refused the connection: {source}; check database.url, \
         database.password_file or PGPASSWORD, database.schema and the server's certificate"
    )]
    Refused {
        /// The server, database and schema (never the password).
        database: String,
        /// What the server or the TLS layer said.
        source: sqlx::Error,
    },

    /// A write was refused because this process no longer holds the lease it was granted
    /// (another daemon took it, or it was never taken): nothing of the write was committed.
    /// The daemon stops acting at once and goes back to standby.
    #[error(
        "leadership lost: the lease of group {group} is no longer at epoch {epoch} held by this \
         process; nothing was committed"
    )]
    LeadershipLost {
        /// The `ha.group`.
        group: String,
        /// The epoch this process held (0: it held none).
        epoch: i64,
    },

    /// The lease exists only in a shared (PostgreSQL) store; SQLite's lock file excludes a
    /// second daemon instead.
    #[error("the state database {database} is not shared: leases need database.url (PostgreSQL)")]
    LeaseUnsupported {
        /// The database file.
        database: String,
    },

    /// Any other database failure, SQLite or PostgreSQL (disk full, I/O error, a lost
    /// connection, constraint violation…).
    #[error("state database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// SQLite primary result codes that `open` and [`StoreError::kind`] tell apart.
const SQLITE_PERM: i64 = 3;
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_NOTADB: i64 = 26;

/// The primary SQLite result code of an error, if it came from SQLite.
fn primary_code(error: &sqlx::Error) -> Option<i64> {
    let database = error.as_database_error()?;
    database.try_downcast_ref::<sqlx::sqlite::SqliteError>()?;
    let code = database.code()?;
    code.parse::<i64>().ok().map(|extended| extended & 0xff)
}

/// The SQLSTATE of an error, if it came from PostgreSQL.
fn sqlstate(error: &sqlx::Error) -> Option<String> {
    let database = error.as_database_error()?;
    database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    Some(database.code()?.into_owned())
}

/// What a PostgreSQL failure means for the daemon, by SQLSTATE class (the metric label of
/// [`StoreError::kind`]).
fn postgres_kind(error: &sqlx::Error) -> Option<&'static str> {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
            return Some("io");
        }
        sqlx::Error::Tls(_) => return Some("refused"),
        _ => {}
    }
    let state = sqlstate(error)?;
    Some(match state.as_str() {
        // serialization failure, deadlock, lock not available
        "40001" | "40P01" | "55P03" => "busy",
        // disk full, out of memory, too many connections
        "53100" | "53200" | "53300" => "full",
        "42501" | "25006" => "readonly",
        "XX001" | "XX002" => "corrupt",
        "28000" | "28P01" | "3D000" => "refused",
        // connection exception, operator intervention (shutdown, restart)
        s if s.starts_with("08") || s.starts_with("57") => "io",
        _ => "other",
    })
}

impl StoreError {
    /// A short name of the failure class, for metric labels (`errors_total{kind="store_…"}`):
    /// `busy`, `full`, `readonly`, `io`, `corrupt`, `refused`, `leadership_lost`, or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Busy { .. } | StoreError::Locked { .. } => "busy",
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. } => "corrupt",
            StoreError::Unwritable { .. } | StoreError::ReadOnly { .. } => "readonly",
            StoreError::Unreachable { .. } => "io",
            StoreError::Refused { .. } | StoreError::InvalidUrl { .. } => "refused",
            StoreError::LeadershipLost { .. } => "leadership_lost",
            StoreError::Database(error) | StoreError::Open { source: error, .. }
                if postgres_kind(error).is_some() =>
            {
                postgres_kind(error).unwrap_or("other")
            }
            StoreError::Database(error) | StoreError::Open { source: error, .. } => {
                match primary_code(error) {
                    Some(SQLITE_BUSY | SQLITE_LOCKED) => "busy",
                    Some(SQLITE_FULL) => "full",
                    Some(SQLITE_READONLY | SQLITE_PERM) => "readonly",
                    Some(SQLITE_IOERR | SQLITE_CANTOPEN) => "io",
                    Some(SQLITE_CORRUPT | SQLITE_NOTADB) => "corrupt",
                    _ => "other",
                }
            }
            _ => "other",
        }
    }

    /// Whether the file itself is damaged: retrying cannot help, the daemon must stop (74).
    /// Everything else (a busy lock, a full disk, an I/O error) may pass and is retried.
    pub fn is_damage(&self) -> bool {
        self.kind() == "corrupt"
    }

    /// Whether the leadership this process held is gone (the write was fenced off).
    pub fn is_leadership_lost(&self) -> bool {
        matches!(self, StoreError::LeadershipLost { .. })
    }

    /// Whether opening may work if tried again later (a PostgreSQL server not reachable now).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unreachable { .. })
    }

    /// Classify an error met while connecting to the PostgreSQL `database`: refused for good
    /// (credentials, TLS, no such database) or unreachable for now.
    pub(super) fn connecting(database: &str, error: sqlx::Error) -> Self {
        let database = database.to_owned();
        match error {
            sqlx::Error::Configuration(reason) => StoreError::InvalidUrl {
                reason: reason.to_string(),
            },
            error if postgres_kind(&error) == Some("refused") => StoreError::Refused {
                database,
                source: error,
            },
            error if matches!(postgres_kind(&error), Some("io" | "busy" | "full")) => {
                StoreError::Unreachable {
                    database,
                    source: error,
                }
            }
            error => StoreError::Database(error),
        }
    }

    /// Classify an error met while opening `path`, so the operator reads what is wrong with the
    /// file rather than a bare SQLite code.
    pub(super) fn opening(path: PathBuf, error: sqlx::Error) -> Self {
        match primary_code(&error) {
            Some(SQLITE_NOTADB) => StoreError::NotADatabase { path },
            Some(SQLITE_BUSY | SQLITE_LOCKED) => StoreError::Busy { path },
            Some(SQLITE_CORRUPT) => StoreError::Corrupt {
                path,
                detail: error.to_string(),
            },
            Some(SQLITE_PERM | SQLITE_READONLY | SQLITE_CANTOPEN) => StoreError::Open {
                path,
                source: error,
            },
            _ => StoreError::Database(error),
        }
    }

    /// Classify a migration failure: an unknown applied migration means a newer binary wrote it.
    pub(super) fn migrating(path: PathBuf, error: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match error {
            MigrateError::VersionMissing(version) => StoreError::SchemaTooNew { path, version },
            MigrateError::Execute(inner) => StoreError::opening(path, inner),
            other => StoreError::Migrate {
                path,
                source: other,
            },
        }
    }
}
