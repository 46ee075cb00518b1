//! Exactly-once event processing through chaos: the simulator emits 20,000 events while the
//! test drops every connection at random moments and SIGKILLs and restarts the daemon; at the
//! end every logged event was applied exactly once and nothing was quarantined. Also: the
//! dedupe set stays bounded by its window without breaking exactly-once.

use std::collections::HashSet;
use std::time::Duration;

use mesolive_sim::SimOptions;
use sqlx::Connection as _;
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim, exactly_once_violations};

const CHUNKS: u64 = 40;
const CHUNK: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_applied_exactly_once_through_drops_and_kills() {
    let seed = testkit::seed("CHAOS_SEED");
    let mut rng = fastrand::Rng::with_seed(seed);
    let sim = Sim::start(SimOptions {
        positions: 5,
        ..SimOptions::default()
    })
    .await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__REPLAY_PAGE_SIZE", "500"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;

    let mut drops = HashSet::new();
    while drops.len() < 12 {
        drops.insert(rng.u64(0..CHUNKS));
    }
    let mut kills = HashSet::new();
    while kills.len() < 6 {
        kills.insert(rng.u64(0..CHUNKS));
    }
    for chunk in 0..CHUNKS {
        sim.emit(CHUNK).await;
        if drops.contains(&chunk) {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..40))).await;
            sim.drop_connections().await;
        }
        if kills.contains(&chunk) {
            tokio::time::sleep(Duration::from_millis(rng.u64(0..60))).await;
            daemon.kill();
            daemon.start();
        }
        tokio::time::sleep(Duration::from_millis(rng.u64(0..20))).await;
    }
    let latest = sim.latest_seq().await;
    assert!(latest >= (CHUNKS * CHUNK) as i64);
    wait_for(
        &format!(
            "cursor at {latest} (seed {seed}, log {})",
            daemon.log.display()
        ),
        Duration::from_secs(90),
        || async { daemon.cursor().await == Some(latest) },
    )
    .await;

    let violations = exactly_once_violations(&sim, &daemon.db).await;
    assert!(
        violations.is_empty(),
        "exactly-once violated (seed {seed}): {violations:#?}"
    );
    let stats = sim.get("/stats").await;
    let dropped = stats["faults_injected"]["connection_drop"]
        .as_u64()
        .unwrap_or(0);
    assert!(dropped >= 10, "at least 10 drops injected: {stats}");
}

async fn processed_keys(daemon: &Daemon) -> i64 {
    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", daemon.db.display()))
            .await
            .unwrap();
    let count = sqlx::query_scalar("SELECT COUNT(*) FROM processed_events")
        .fetch_one(&mut db)
        .await
        .unwrap();
    let _ = db.close().await;
    count
}

async fn applied_total(daemon: &Daemon) -> i64 {
    let store = daemon.store().await;
    let total = store
        .applied_event_counts()
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    let _ = store.close().await;
    total
}

/// The dedupe set is bounded by `events.dedupe_window`: with a 2 s window the daemon forgets
/// its keys within seconds, and afterwards still applies new events exactly once, through a
/// reconnect (replay overlaps what it had) and a SIGKILL restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dedupe_set_is_pruned_by_age_and_the_daemon_keeps_working() {
    let sim = Sim::start(SimOptions::default()).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__DEDUPE_WINDOW", "2s"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.emit(500).await;
    let latest = sim.latest_seq().await;
    wait_for("cursor at latest", Duration::from_secs(30), || async {
        daemon.cursor().await == Some(latest)
    })
    .await;
    assert!(processed_keys(&daemon).await >= 500);
    wait_for(
        "every key older than the window pruned",
        Duration::from_secs(20),
        || async { processed_keys(&daemon).await == 0 },
    )
    .await;
    let pruned = daemon.metric("mesolive_events_pruned_total").await.unwrap();
    assert!(pruned >= latest as f64, "{pruned} pruned of {latest}");

    sim.emit(300).await;
    sim.drop_connections().await;
    sim.emit(200).await;
    daemon.kill();
    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    let latest = sim.latest_seq().await;
    wait_for(
        "cursor at latest after a reconnect and a restart",
        Duration::from_secs(30),
        || async { daemon.cursor().await == Some(latest) },
    )
    .await;
    assert_eq!(
        applied_total(&daemon).await,
        latest,
        "every event applied exactly once although its older keys were forgotten"
    );
    let violations = exactly_once_violations(&sim, &daemon.db).await;
    assert!(
        violations.iter().all(|v| v.contains("never applied")),
        "only pruned keys may be missing: {violations:#?}"
    );
}
