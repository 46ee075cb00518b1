//! Local faults, the daemon as a real process: a second daemon on the same database, a write
//! lock held by another process (at startup and while running), a full filesystem, a read-only
//! filesystem, and SIGTERM during startup (hubs unreachable, or in the middle of a long replay).
//! Each ends with a clear line and its documented exit status, or is ridden out with a log line
//! and a metric; the database is never damaged and nothing committed is lost.
//!
//! The full and read-only filesystem cases need a tmpfs (root and mount(8)), the immutable
//! file case chattr(1): without them they fail saying so (a test never passes by skipping).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use mesolive_sim::SimOptions;
use mesolive_supervisor::store::{Store, StoreOptions};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim, unused_port};
use crate::support::fs::Tmpfs;

const READY: Duration = Duration::from_secs(20);
const SOON: Duration = Duration::from_secs(10);

async fn caught_up(daemon: &Daemon, sim: &Sim, timeout: Duration) {
    let latest = sim.latest_seq().await;
    let reached = tokio::time::timeout(timeout, async {
        while daemon.cursor().await != Some(latest) {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    if reached.is_err() {
        let log = daemon.log_text();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "cursor {:?} never reached {latest} within {timeout:?}; log tail (newest first):\n{}",
            daemon.cursor().await,
            tail.join("\n")
        );
    }
}

/// Stops the daemon with SIGTERM (status 0) and proves the file opens for writing: lock
/// released, integrity check passed, migrations current.
async fn stop_and_reopen(daemon: &mut Daemon) {
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    let store = Store::open(&daemon.db, &StoreOptions::default())
        .await
        .unwrap_or_else(|err| panic!("the database reopens: {err}"));
    store.close().await.unwrap();
}

/// Another process's connection holding the database's write lock until `release`.
struct WriteLock(SqliteConnection);

impl WriteLock {
    async fn take(db: &Path) -> WriteLock {
        let mut connection =
            SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(db))
                .await
                .expect("external connection");
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut connection)
            .await
            .expect("write lock taken");
        WriteLock(connection)
    }

    async fn release(mut self) {
        sqlx::query("ROLLBACK").execute(&mut self.0).await.unwrap();
        self.0.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_database_exits_75_and_the_first_runs_on() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut first = Daemon::spawn(&sim, dir.path(), &[]);
    first.wait_ready(READY).await;

    let mut second = Daemon::spawn(&sim, dir.path(), &[]);
    let status = second.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(75), "log: {}", second.log_text());
    second
        .wait_log(&["is in use by another mesolive-supervisor"], SOON)
        .await;

    assert!(first.is_running());
    sim.emit(20).await;
    caught_up(&first, &sim, SOON).await;
    assert_eq!(first.readyz().await, Some(200));
    stop_and_reopen(&mut first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_by_another_process_is_ridden_out_and_refused_at_startup_with_75() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let busy = [("MESOLIVE__DATABASE__BUSY_TIMEOUT", "300ms")];
    let mut daemon = Daemon::spawn(&sim, dir.path(), &busy);
    daemon.wait_ready(READY).await;

    // While running: commits wait, fail as busy, and are retried on the same connection.
    let lock = WriteLock::take(&daemon.db).await;
    sim.emit(50).await;
    daemon.wait_errors("store_busy", 2.0, SOON).await;
    daemon
        .wait_log(&["event store failed", "database is locked"], SOON)
        .await;
    assert_eq!(daemon.readyz().await, Some(503));
    assert!(daemon.is_running());
    lock.release().await;
    caught_up(&daemon, &sim, SOON).await;
    daemon.wait_ready(READY).await;
    assert_eq!(
        daemon
            .metric("mesolive_hub_reconnects_total{hub=\"event\"}")
            .await,
        Some(0.0),
        "the lock is ridden out on the same Event Hub connection"
    );
    stop_and_reopen(&mut daemon).await;

    // At startup: the store cannot be opened for writing; 75 (try again later), file unchanged.
    let lock = WriteLock::take(&daemon.db).await;
    let cursor = daemon.cursor().await;
    daemon.start();
    let status = daemon.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(75), "log: {}", daemon.log_text());
    daemon
        .wait_log(&["is locked by another process"], SOON)
        .await;
    lock.release().await;
    assert_eq!(daemon.cursor().await, cursor);
    daemon.start();
    daemon.wait_ready(READY).await;
    stop_and_reopen(&mut daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_filesystem_is_ridden_out_and_nothing_is_lost() {
    let dir = testkit::temp_dir();
    let Some(fs) = Tmpfs::mount(&dir.path().join("fs"), "16m") else {
        panic!("this test needs a tmpfs it can fill: run it as root with mount(8)");
    };
    let sim = Sim::start(SimOptions::default()).await;
    let db = fs.path.join("state.db").display().to_string();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__DATABASE__PATH", &db)]);
    daemon.wait_ready(READY).await;
    sim.emit(100).await;
    caught_up(&daemon, &sim, SOON).await;

    let filler = fs.fill();
    sim.emit(20_000).await;
    let what = format!(
        "a failed commit on the full disk (log {})",
        daemon.log.display()
    );
    wait_for(&what, SOON, || async {
        daemon.errors("store_full").await + daemon.errors("store_io").await >= 1.0
    })
    .await;
    daemon.wait_log(&["event store failed"], SOON).await;
    assert_eq!(daemon.readyz().await, Some(503));
    assert!(daemon.is_running());

    std::fs::remove_file(filler).unwrap();
    caught_up(&daemon, &sim, Duration::from_secs(60)).await;
    daemon.wait_ready(READY).await;
    stop_and_reopen(&mut daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_filesystem_at_startup_exits_74_and_leaves_the_file_untouched() {
    let dir = testkit::temp_dir();
    let Some(fs) = Tmpfs::mount(&dir.path().join("fs"), "16m") else {
        panic!("this test needs a tmpfs it can fill: run it as root with mount(8)");
    };
    let sim = Sim::start(SimOptions::default()).await;
    let db = fs.path.join("state.db").display().to_string();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__DATABASE__PATH", &db)]);
    daemon.wait_ready(READY).await;
    sim.emit(30).await;
    caught_up(&daemon, &sim, SOON).await;
    stop_and_reopen(&mut daemon).await;
    let before = std::fs::read(&db).unwrap();

    fs.remount(true);
    daemon.start();
    let status = daemon.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(74), "log: {}", daemon.log_text());
    daemon
        .wait_log(&["Read-only file system", "expected a writable"], SOON)
        .await;
    assert_eq!(std::fs::read(&db).unwrap(), before, "not a byte changed");

    fs.remount(false);
    daemon.start();
    daemon.wait_ready(READY).await;
    caught_up(&daemon, &sim, SOON).await;
    stop_and_reopen(&mut daemon).await;
}

/// `chattr +i|-i` on `path`; false where the filesystem or the user does not allow it.
fn immutable(path: &Path, on: bool) -> bool {
    let flag = if on { "+i" } else { "-i" };
    Command::new("chattr")
        .arg(flag)
        .arg(path)
        .status()
        .is_ok_and(|status| status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_database_file_exits_74_and_is_left_untouched() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(READY).await;
    stop_and_reopen(&mut daemon).await;
    // An immutable file: not writable even by root (a mode change would not stop root).
    assert!(
        immutable(&daemon.db, true),
        "this test needs chattr(1) +i: run it as root on a filesystem with attributes"
    );
    let before = std::fs::read(&daemon.db).unwrap();
    daemon.start();
    let status = daemon.wait_exit(SOON).await;
    let log = daemon.log_text();
    assert!(immutable(&daemon.db, false), "chattr -i");
    assert_eq!(status.code(), Some(74), "log: {log}");
    assert!(
        log.contains("cannot open the state database")
            && log.contains("Operation not permitted")
            && log.contains("expected a readable and writable SQLite file"),
        "a clear line: {log}"
    );
    assert_eq!(
        std::fs::read(&daemon.db).unwrap(),
        before,
        "not a byte changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_the_hubs_are_unreachable_exits_0_promptly() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let nowhere = format!("http://127.0.0.1:{}", unused_port());
    let mut daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__HUBS__BASE_URL", &nowhere)]);
    daemon.wait_log(&["hub unavailable", "control"], SOON).await;
    let started = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let store = Store::open(&daemon.db, &StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(store.cursor().await.unwrap(), None, "nothing was invented");
    store.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_a_long_replay_exits_0_and_the_next_start_finishes_it() {
    let sim = Sim::start(SimOptions::default()).await;
    sim.emit(60_000).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__REPLAY_PAGE_SIZE", "100"),
        ],
    );
    let latest = sim.latest_seq().await;
    wait_for("the replay under way", READY, || async {
        daemon
            .cursor_if_any()
            .await
            .is_some_and(|cursor| cursor > 0)
    })
    .await;
    assert_ne!(daemon.readyz().await, Some(200), "still starting");
    let started = std::time::Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(SOON).await;
    assert_eq!(status.code(), Some(0), "log: {}", daemon.log_text());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let stopped_at = daemon.cursor().await.expect("a cursor");
    assert!(
        stopped_at < latest,
        "stopped mid-replay: {stopped_at} of {latest}"
    );

    daemon.start();
    daemon.wait_ready(Duration::from_secs(60)).await;
    caught_up(&daemon, &sim, SOON).await;
    stop_and_reopen(&mut daemon).await;
}
