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

    /// Any other SQLite failure (disk full, I/O error, constraint violation…).
    #[error("state database error: {0}")]
    Sqlite(#[from] sqlx::Error),
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
    let code = error.as_database_error()?.code()?;
    code.parse::<i64>().ok().map(|extended| extended & 0xff)
}

impl StoreError {
    /// A short name of the failure class, for metric labels (`errors_total{kind="store_…"}`):
    /// `busy`, `full`, `readonly`, `io`, `corrupt`, or `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Busy { .. } | StoreError::Locked { .. } => "busy",
            StoreError::Corrupt { .. } | StoreError::NotADatabase { .. } => "corrupt",
            StoreError::Unwritable { .. } | StoreError::ReadOnly { .. } => "readonly",
            StoreError::Sqlite(error) | StoreError::Open { source: error, .. } => {
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
            _ => StoreError::Sqlite(error),
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
