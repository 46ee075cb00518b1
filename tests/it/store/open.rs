//! Opening the state store: migrations, the single-instance lock, files it must refuse
//! without touching them, and (PostgreSQL) a fresh schema opened by several stores at once.

use std::path::Path;

use mesolive_supervisor::store::{
    RecordOutcome, SignalState, Store, StoreError, StoreOptions, Synchronous,
};
use rust_decimal::Decimal;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use crate::support::store::{
    Backend, TestDb, open, order_event, raw, scalar, signal_push, temp_db,
};

fn contents(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read file")
}

#[tokio::test]
async fn migrations_apply_on_an_empty_file_and_reopen_is_idempotent() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    assert_eq!(store.cursor().await.unwrap(), None);
    store.apply_events(&[order_event(1, 1, 1)]).await.unwrap();
    store.close().await.unwrap();

    let mut conn = raw(&path).await;
    let applied = scalar(&mut conn, "SELECT COUNT(*) FROM _sqlx_migrations").await;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    conn.close().await.unwrap();

    for _ in 0..2 {
        let store = open(&path).await;
        assert_eq!(
            store.cursor().await.unwrap(),
            Some(1),
            "state survives re-open"
        );
        store.close().await.unwrap();
    }
    let mut conn = raw(&path).await;
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM _sqlx_migrations").await,
        applied,
        "re-opening applies nothing twice"
    );
}

#[tokio::test]
async fn the_dedupe_set_of_an_older_schema_is_carried_over() {
    // A database as the release before the append-only dedupe log left it: migrations up to
    // 0002, with two processed keys.
    let (dir, path) = temp_db();
    let mut conn = migrated_until(dir.path(), &path, "0002").await;
    sqlx::query(
        "INSERT INTO processed_events (event_key, seq_id, target, processed_at)
         VALUES ('push-0', NULL, 'OnEntrySignal', 1), ('event-1', 1, 'OnOrderUpdate', 2)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = open(&path).await;
    let outcome = store
        .apply_events(&[
            signal_push("push-0", SignalState::On),
            signal_push("push-1", SignalState::On),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcome.outcomes,
        vec![RecordOutcome::AlreadyProcessed, RecordOutcome::Applied],
        "a key recorded before the migration is still known"
    );
    store.close().await.unwrap();
    let mut conn = raw(&path).await;
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM processed_events").await,
        3
    );
}

#[tokio::test]
async fn the_realized_pnl_marks_of_an_older_schema_keep_the_last_of_each_second() {
    let (dir, path) = temp_db();
    let mut conn = migrated_until(dir.path(), &path, "0009").await;
    sqlx::query(
        "INSERT INTO realized_pnl_marks (position_id, account, realized_pnl, at)
         VALUES (9, 'U1', '-1', 1000100), (9, 'U1', '-2', 1000900), (9, 'U1', '-3', 1001500),
                (10, 'U1', '5', 1000200)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = open(&path).await;
    let since = chrono::DateTime::from_timestamp_millis(1_001_000).unwrap();
    let movements = store.realized_pnl_movements(since.into()).await.unwrap();
    assert_eq!(movements.len(), 1, "{movements:?}");
    assert_eq!(movements[0].position_id, 9);
    assert_eq!(movements[0].opening, Some(Decimal::from(-2)));
    assert_eq!(movements[0].latest, Decimal::from(-3));
    store.close().await.unwrap();
    let mut conn = raw(&path).await;
    let kept: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT position_id, realized_pnl, at FROM realized_pnl_marks ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(
        kept,
        [
            (9, "-2".to_owned(), 1_000_000),
            (9, "-3".to_owned(), 1_001_000),
            (10, "5".to_owned(), 1_000_000),
        ]
    );
}

#[tokio::test]
async fn the_snapshots_of_an_older_schema_move_out_of_the_positions_rows() {
    let (dir, path) = temp_db();
    let mut conn = migrated_until(dir.path(), &path, "0010").await;
    sqlx::query(
        "INSERT INTO positions (position_id, strategy_id, account, name, state, monitored,
                                last_snapshot, snapshot_at, updated_at)
         VALUES (7, 101, 'U1', 'IC 7', 'open', 1, '{\"PnL\":{\"Unrealized\":\"1.5\"}}', 5000, 6000),
                (8, 101, 'U1', 'IC 8', 'open', 1, NULL, NULL, 6000)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    let store = open(&path).await;
    let with = store.position(7).await.unwrap().unwrap();
    assert_eq!(
        with.last_snapshot,
        Some(serde_json::json!({ "PnL": { "Unrealized": "1.5" } }))
    );
    assert_eq!(with.snapshot_at.map(|at| at.unix_millis()), Some(5000));
    let without = store.position(8).await.unwrap().unwrap();
    assert_eq!((without.last_snapshot, without.snapshot_at), (None, None));
    assert_eq!(store.open_positions().await.unwrap().len(), 2);
}

/// A database at `path` migrated with this binary's migrations up to `last` (a version prefix)
/// only, as an older release left it; the migrations are copied under `dir`.
async fn migrated_until(dir: &Path, path: &Path, last: &str) -> SqliteConnection {
    let older = dir.join("older-migrations");
    std::fs::create_dir_all(&older).unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let current = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join("sqlite");
    for entry in std::fs::read_dir(&current).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name
            .get(..last.len())
            .is_some_and(|version| version <= last)
        {
            std::fs::copy(current.join(&name), older.join(&name)).unwrap();
        }
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true);
    let mut conn = SqliteConnection::connect_with(&options).await.unwrap();
    Migrator::new(older)
        .await
        .unwrap()
        .run(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test]
async fn connection_settings_are_applied() {
    let (_dir, path) = temp_db();
    let options = StoreOptions {
        synchronous: Synchronous::Normal,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, &options).await.unwrap();
    // The writer enforces foreign keys: an order linked to an intent that does not exist fails.
    let refused = store.link_order_to_intent(1, "no-such-intent", 7).await;
    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_second_open_is_locked_out_until_the_first_is_dropped() {
    let (_dir, path) = temp_db();
    let first = open(&path).await;
    let second = Store::open(&path, &StoreOptions::default()).await;
    match second {
        Err(StoreError::Locked { path: locked }) => assert_eq!(locked, path),
        other => panic!("expected Locked, got {other:?}"),
    }
    let message = Store::open(&path, &StoreOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("in use by another mesolive-supervisor"),
        "{message}"
    );

    // The read-only view for `state` needs no lock.
    let viewer = Store::open_read_only(&path).await.unwrap();
    assert_eq!(viewer.cursor().await.unwrap(), None);

    drop(first);
    let again = open(&path).await;
    again.close().await.unwrap();
}

#[tokio::test]
async fn a_read_only_store_refuses_writes_and_missing_files() {
    let (_dir, path) = temp_db();
    match Store::open_read_only(&path).await {
        Err(StoreError::Missing { path: missing }) => assert_eq!(missing, path),
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(!path.exists(), "open_read_only never creates the file");

    let store = open(&path).await;
    store.apply_events(&[order_event(1, 1, 1)]).await.unwrap();
    store.close().await.unwrap();
    // No daemon running: the view still reads a WAL-mode file.
    let viewer = Store::open_read_only(&path).await.unwrap();
    assert_eq!(viewer.cursor().await.unwrap(), Some(1));
    let refused = viewer.apply_events(&[order_event(2, 1, 1)]).await;
    assert!(
        matches!(refused, Err(StoreError::ReadOnly { .. })),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_schema_from_a_newer_binary_is_refused_and_left_untouched() {
    let (_dir, path) = temp_db();
    open(&path).await.close().await.unwrap();
    let mut conn = raw(&path).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000000, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let before = contents(&path);

    let error = Store::open(&path, &StoreOptions::default())
        .await
        .unwrap_err();
    match &error {
        StoreError::SchemaTooNew { path: p, version } => {
            assert_eq!(p, &path);
            assert_eq!(*version, 99_990_101_000_000);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    assert!(error.to_string().contains("upgrade the binary"), "{error}");
    assert_eq!(
        contents(&path),
        before,
        "the file is byte-for-byte unchanged"
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_and_left_untouched() {
    let (dir, _) = temp_db();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&path, &garbage).unwrap();

    let error = Store::open(&path, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::NotADatabase { path: p } if p == &path),
        "{error:?}"
    );
    assert!(error.to_string().contains("left untouched"), "{error}");
    assert_eq!(
        contents(&path),
        garbage,
        "the file is byte-for-byte unchanged"
    );
}

#[tokio::test]
async fn a_database_with_damaged_pages_is_refused_and_left_untouched() {
    let (_dir, path) = temp_db();
    let store = open(&path).await;
    let batch: Vec<_> = (1..=400).map(|seq| order_event(seq, seq, seq)).collect();
    store.apply_events(&batch).await.unwrap();
    store.close().await.unwrap();

    // Keep the header page, scribble over every page after it.
    let mut damaged = contents(&path);
    assert!(damaged.len() > 3 * 4096, "the database spans several pages");
    for (i, byte) in damaged.iter_mut().enumerate().skip(4096) {
        *byte = (i % 251) as u8;
    }
    std::fs::write(&path, &damaged).unwrap();

    let error = Store::open(&path, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { path: p, .. } if p == &path),
        "{error:?}"
    );
    assert_eq!(
        contents(&path),
        damaged,
        "the file is byte-for-byte unchanged"
    );
}

#[tokio::test]
async fn an_uncreatable_directory_gives_unwritable_and_leaves_the_blocking_file_untouched() {
    let (dir, _) = temp_db();
    // A regular file where the state directory should be: creation fails even for root.
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"keep me").unwrap();
    let path = blocker.join("state").join("state.db");

    let error = Store::open(&path, &StoreOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(&error, StoreError::Unwritable { .. }), "{error:?}");
    assert!(
        error.to_string().contains("expected a writable directory"),
        "{error}"
    );
    assert_eq!(contents(&blocker), b"keep me");
}

#[tokio::test]
async fn a_read_only_directory_gives_unwritable_when_not_root() {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // Root ignores directory modes; the test above covers the same error regardless.
        return;
    }
    let (dir, _) = temp_db();
    let locked_dir = dir.path().join("ro");
    std::fs::create_dir(&locked_dir).unwrap();
    std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    let result = Store::open(locked_dir.join("state.db"), &StoreOptions::default()).await;
    std::fs::set_permissions(&locked_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(
        matches!(result, Err(StoreError::Unwritable { .. })),
        "{result:?}"
    );
    assert_eq!(
        std::fs::read_dir(&locked_dir).unwrap().count(),
        0,
        "nothing was created"
    );
}

/// Daemons of a failover group start together: several stores opening the same fresh schema at
/// once (each on a thread and a runtime of its own, released together) all open it, created and
/// migrated once; none fails on the catalog.
#[test]
#[ignore = "needs PostgreSQL: cargo test --test it -- --ignored postgres"]
fn stores_opening_a_fresh_schema_at_once_all_open_postgres() {
    const STORES: usize = 8;
    for _ in 0..12 {
        let db = TestDb::new(Backend::Postgres);
        let start = std::sync::Barrier::new(STORES);
        let mut ids: Vec<String> = std::thread::scope(|scope| {
            let opening: Vec<_> = (0..STORES)
                .map(|_| {
                    scope.spawn(|| {
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .expect("runtime");
                        start.wait();
                        runtime.block_on(async {
                            let store = Store::connect(&db.location, &StoreOptions::default())
                                .await
                                .expect("every store opens");
                            store.instance_id().to_owned()
                        })
                    })
                })
                .collect();
            opening
                .into_iter()
                .map(|thread| thread.join().expect("opening thread"))
                .collect()
        });
        ids.dedup();
        assert_eq!(ids.len(), 1, "one database, one identity");
    }
}
