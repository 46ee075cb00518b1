//! Process-level crash safety: a child process writes events in a loop and is killed with
//! SIGKILL at random points; after every kill the database must show a cursor and dedupe set
//! that agree, every event up to the cursor applied exactly once, and effects that match.
//!
//! The child is this same test binary, re-executed to run the ignored `child_writer` test (by
//! its full path in the binary) with `CRASH_CHILD_DB` set.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mesolive_supervisor::store::{SignalState, Store, StoreOptions, Synchronous};
use sqlx::Connection;

use crate::support::store::{open, order_event, raw, scalar, signal_push};

const CHILD_ENV: &str = "CRASH_CHILD_DB";
const KILLS: usize = 24;
/// Orders the events spread over: each order's filled qty is the last sequence id that hit it.
const ORDERS: i64 = 10;

/// The event with sequence id `seq`; its effect is predictable from `seq` alone.
fn event(seq: i64) -> mesolive_supervisor::store::EventRecord {
    order_event(seq, seq % ORDERS, seq)
}

#[tokio::test]
#[ignore = "child process of sigkill_at_random_points_keeps_cursor_dedupe_and_effects_consistent"]
async fn child_writer() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let options = StoreOptions {
        synchronous: Synchronous::Full,
        ..StoreOptions::default()
    };
    let store = Store::open(&path, &options).await.expect("child opens");
    let mut next = store.cursor().await.expect("cursor").map_or(1, |c| c + 1);
    let mut rng = fastrand::Rng::new();
    loop {
        let size = rng.i64(1..=24);
        let mut batch = Vec::new();
        if next > 1 {
            // Overlap, as replay and live delivery overlap: below the cursor, and a re-sent
            // EventId without its sequence id.
            batch.push(event(next - 1));
            let mut again = event(next - 1);
            again.seq_id = None;
            batch.push(again);
        }
        batch.push(signal_push(&format!("push-{next}"), SignalState::On));
        batch.extend((next..next + size).map(event));
        store.apply_events(&batch).await.expect("child applies");
        next += size;
    }
}

fn spawn_child(path: &Path) -> Child {
    let exe = std::env::current_exe().expect("test binary path");
    // The test's name in the binary: this module's path without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, path)| path);
    Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            &format!("{module}::child_writer"),
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child writer")
}

/// Wait until the child has committed past `cursor` (polling the database, read-only).
async fn wait_for_progress(path: &Path, cursor: i64, child: &mut Child) -> i64 {
    let viewer = Store::open_read_only(path).await.expect("viewer");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(now)) = viewer.cursor().await
            && now > cursor
        {
            return now;
        }
        assert!(
            child.try_wait().expect("child status").is_none(),
            "the child writer exited on its own"
        );
        assert!(
            Instant::now() < deadline,
            "no progress past {cursor} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Re-open after a kill and check every invariant; returns the cursor.
async fn check_consistent(path: &Path) -> i64 {
    let store = open(path).await; // recovers the WAL, like a restarted daemon
    let cursor = store.cursor().await.unwrap().expect("progress was made");
    store.close().await.unwrap();

    let mut conn = raw(path).await;
    let max_seq = scalar(&mut conn, "SELECT MAX(seq_id) FROM processed_events").await;
    let with_seq = scalar(&mut conn, "SELECT COUNT(seq_id) FROM processed_events").await;
    let distinct_seq = scalar(
        &mut conn,
        "SELECT COUNT(DISTINCT seq_id) FROM processed_events",
    )
    .await;
    let min_seq = scalar(&mut conn, "SELECT MIN(seq_id) FROM processed_events").await;
    let processed = scalar(&mut conn, "SELECT COUNT(*) FROM processed_events").await;
    let applied = scalar(&mut conn, "SELECT SUM(applied) FROM event_stats").await;
    let pushes = scalar(
        &mut conn,
        "SELECT COUNT(*) FROM processed_events WHERE seq_id IS NULL",
    )
    .await;
    assert_eq!(cursor, max_seq, "cursor == highest processed sequence id");
    assert_eq!(
        (min_seq, with_seq, distinct_seq),
        (1, cursor, cursor),
        "every seq 1..=cursor exactly once"
    );
    assert_eq!(
        applied, processed,
        "applied exactly once per processed event"
    );
    assert_eq!(
        scalar(
            &mut conn,
            "SELECT applied FROM event_stats WHERE target = 'OnEntrySignal'"
        )
        .await,
        pushes
    );

    let orders: Vec<(i64, String)> =
        sqlx::query_as("SELECT order_id, filled_qty FROM orders ORDER BY order_id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let expected: Vec<(i64, String)> = (0..ORDERS)
        .filter_map(|id| {
            let last = (1..=cursor).rev().find(|seq| seq % ORDERS == id)?;
            Some((id, last.to_string()))
        })
        .collect();
    assert_eq!(orders, expected, "effects match the cursor");
    conn.close().await.unwrap();
    cursor
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_keeps_cursor_dedupe_and_effects_consistent() {
    let dir = testkit::temp_dir();
    let path = dir.path().join("crash.db");
    open(&path).await.close().await.unwrap();

    // The kill delays: `CHAOS_SEED=<n>` replays them.
    let seed = testkit::seed("CHAOS_SEED");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut cursor = 0;
    for kill in 0..KILLS {
        let mut child = spawn_child(&path);
        wait_for_progress(&path, cursor, &mut child).await;
        tokio::time::sleep(Duration::from_millis(rng.u64(2..=100))).await;
        child.kill().expect("SIGKILL the child");
        child.wait().expect("reap the child");

        let after = check_consistent(&path).await;
        assert!(
            after > cursor,
            "kill {kill}: the cursor moved forward ({cursor} -> {after})"
        );
        eprintln!("kill {kill}: cursor {after}");
        cursor = after;
    }
}
