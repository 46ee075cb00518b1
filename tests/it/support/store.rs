//! Helpers shared by the store tests: temp databases on either backend, event builders, and raw
//! inspection. Raw SQL here only inspects a database or injects a fault; the code under test
//! owns the rest.
//!
//! A test written once as `async fn name(backend: Backend)` inside [`on_both_backends!`] runs
//! on SQLite in every `cargo test` and on PostgreSQL as `name::postgres` (ignored unless
//! PostgreSQL is installed: `cargo test --test it -- --ignored postgres`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    Effect, EventRecord, Location, OrderUpdate, SignalState, SignalUpdate, Store, StoreOptions,
};
use rust_decimal::Decimal;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, Row};
use testkit::TempDir;

/// A fresh directory and the database path inside it (the file does not exist yet).
pub(crate) fn temp_db() -> (TempDir, PathBuf) {
    let dir = testkit::temp_dir();
    let path = dir.path().join("state").join("state.db");
    (dir, path)
}

/// Which backend a parameterized test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh, empty database on one backend: a temp SQLite file, or a fresh schema of the shared
/// test cluster. Open it (again) with [`TestDb::open`].
pub(crate) struct TestDb {
    pub location: Location,
    _dir: TempDir,
    _cluster: Option<Arc<super::pg::Cluster>>,
}

impl TestDb {
    pub(crate) fn new(backend: Backend) -> TestDb {
        let (dir, path) = temp_db();
        match backend {
            Backend::Sqlite => TestDb {
                location: Location::Sqlite(path),
                _dir: dir,
                _cluster: None,
            },
            Backend::Postgres => {
                let cluster = super::pg::shared();
                TestDb {
                    location: cluster.fresh_location(),
                    _dir: dir,
                    _cluster: Some(cluster),
                }
            }
        }
    }

    /// Opens (and migrates) the store with the default options.
    pub(crate) async fn open(&self) -> Store {
        self.open_with(&StoreOptions::default()).await
    }

    pub(crate) async fn open_with(&self, options: &StoreOptions) -> Store {
        Store::connect(&self.location, options)
            .await
            .expect("store opens")
    }

    /// The first column of `sql`'s rows as text, read on a connection of its own (inspection
    /// only: the store may be open meanwhile).
    pub(crate) async fn texts(&self, sql: &'static str) -> Vec<String> {
        match &self.location {
            Location::Sqlite(path) => {
                let mut conn = raw(path).await;
                let texts = sqlx::query_scalar(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("inspection query");
                conn.close().await.expect("close raw connection");
                texts
            }
            Location::Postgres(pg) => {
                let mut conn = sqlx::PgConnection::connect(&pg.url)
                    .await
                    .expect("raw connection");
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SET search_path TO {}",
                    pg.schema
                )))
                .execute(&mut conn)
                .await
                .expect("schema");
                let texts = sqlx::query_scalar(sql)
                    .fetch_all(&mut conn)
                    .await
                    .expect("inspection query");
                conn.close().await.expect("close raw connection");
                texts
            }
        }
    }
}

/// Defines each `async fn name(backend: Backend) { … }` as a module `name` with two tests:
/// `sqlite` and `postgres` (the latter ignored: it needs a PostgreSQL installation).
macro_rules! on_both_backends {
    ($($(#[doc = $doc:literal])* async fn $name:ident($backend:ident: Backend) $body:block)*) => {
        $(
            $(#[doc = $doc])*
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                async fn run($backend: crate::support::store::Backend) $body

                #[tokio::test]
                async fn sqlite() {
                    run(crate::support::store::Backend::Sqlite).await
                }

                #[tokio::test]
                #[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
                async fn postgres() {
                    run(crate::support::store::Backend::Postgres).await
                }
            }
        )*
    };
}
pub(crate) use on_both_backends;

pub(crate) async fn open(path: &Path) -> Store {
    Store::open(path, &StoreOptions::default())
        .await
        .expect("store opens")
}

/// An order update event with a sequence id: order `order_id` now has `filled` filled.
pub(crate) fn order_event(seq: i64, order_id: i64, filled: i64) -> EventRecord {
    EventRecord {
        key: format!("evt-{seq}"),
        seq_id: Some(seq),
        target: "OnOrderUpdate".into(),
        effect: Effect::Order(OrderUpdate {
            order_id,
            strategy_id: 7,
            account: Some("U123".into()),
            exec_plan_id: Some(900 + order_id),
            leg_group_id: None,
            state: "Working".into(),
            filled_qty: Some(Decimal::from(filled)),
            avg_fill_price: Some(Decimal::new(12_345, 2)),
        }),
    }
}

/// An entry signal push as sent on connect: no sequence id, keyed by content.
pub(crate) fn signal_push(key: &str, state: SignalState) -> EventRecord {
    EventRecord {
        key: key.into(),
        seq_id: None,
        target: "OnEntrySignal".into(),
        effect: Effect::Signal(SignalUpdate {
            kind: FlowKind::Entry,
            state,
            strategy_id: 7,
            position_id: None,
            account: Some("U123".into()),
            condition: None,
            payload: serde_json::json!({ "State": state.as_str(), "StrategyId": 7 }),
            source: Default::default(),
        }),
    }
}

/// A direct connection for inspection and fault injection (the store may be open meanwhile).
pub(crate) async fn raw(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
        .await
        .expect("raw connection")
}

pub(crate) async fn scalar(conn: &mut SqliteConnection, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .expect("scalar query")
}

/// Every row of every table of the state store, as text, in a stable order: two dumps are
/// equal exactly when the state is.
pub(crate) async fn dump(path: &Path) -> String {
    let mut conn = raw(path).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != '_sqlx_migrations'
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list tables");
    let mut out = String::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT name FROM pragma_table_info('{table}')"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("list columns");
        let row_text = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {row_text} AS row FROM \"{table}\" ORDER BY 1"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("dump rows");
        out.push_str(&format!("## {table}\n"));
        for row in rows {
            let text: String = row.try_get("row").expect("row text");
            out.push_str(&text);
            out.push('\n');
        }
    }
    conn.close().await.expect("close raw connection");
    out
}
