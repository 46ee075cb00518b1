//! Exactly-once event processing through chaos: the simulator emits 20,000 events while the
//! test drops every connection at random moments and SIGKILLs and restarts the daemon; at the
//! end every logged event was applied exactly once and nothing was quarantined.

mod daemon_support;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use daemon_support::{Daemon, Sim, wait_for};
use mesolive_supervisor::hubs::client::{EventHub, HubClient};
use mesolive_supervisor::signalr::{ConnectOptions, Connection};
use mesolive_supervisor::sim::SimOptions;
use sqlx::{Connection as _, Row};

const CHUNKS: u64 = 40;
const CHUNK: u64 = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_is_applied_exactly_once_through_drops_and_kills() {
    let seed = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("CHAOS_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let sim = Sim::start(SimOptions {
        positions: 5,
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
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

    let history = sim_history(&sim, latest).await;
    assert_eq!(
        history.len() as i64,
        latest,
        "the simulator logged 1..={latest}"
    );
    let mut expected_per_target: BTreeMap<String, i64> = BTreeMap::new();
    for (_, _, target) in &history {
        *expected_per_target.entry(target.clone()).or_default() += 1;
    }

    let mut db =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", daemon.db.display()))
            .await
            .unwrap();
    let keys: HashSet<String> = sqlx::query("SELECT event_key FROM processed_events")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<String, _>(0))
        .collect();
    let missing: Vec<i64> = history
        .iter()
        .filter(|(_, id, _)| !keys.contains(&id.to_ascii_lowercase()))
        .map(|(seq, _, _)| *seq)
        .collect();
    assert!(
        missing.is_empty(),
        "events never applied (seed {seed}): {missing:?}"
    );
    let applied: BTreeMap<String, i64> = sqlx::query("SELECT target, applied FROM event_stats")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1)))
        .collect();
    assert_eq!(
        applied, expected_per_target,
        "effects applied per callback equal the events logged per callback (seed {seed})"
    );
    let duplicated_seqs: i64 =
        sqlx::query_scalar("SELECT COUNT(seq_id) - COUNT(DISTINCT seq_id) FROM processed_events")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(duplicated_seqs, 0);
    let quarantined: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM quarantined_events")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(quarantined, 0, "no valid event was quarantined");
    let stats = sim.get("/stats").await;
    let dropped = stats["faults_injected"]["connection_drop"]
        .as_u64()
        .unwrap_or(0);
    assert!(dropped >= 10, "at least 10 drops injected: {stats}");
}

/// `(seq, EventId, callback)` of every logged event, read through the Event Hub like a client.
async fn sim_history(sim: &Sim, latest: i64) -> Vec<(i64, String, String)> {
    let url = format!("{}/hubs/event/v1", sim.running.hub_base_url());
    let options = ConnectOptions::new(url.parse().unwrap()).with_access_token(sim.running.token());
    let connection = Arc::new(Connection::connect(options).await.unwrap());
    let hub = EventHub(HubClient::new(connection));
    let mut events = Vec::new();
    let mut after = 0;
    while after < latest {
        let page = hub.events_since(after, 1000, None).await.unwrap();
        assert!(!page.events.is_empty(), "history ends before {latest}");
        for event in page.events {
            let payload = &event.payload;
            let seq = payload["EventSeqId"].as_i64().unwrap();
            let id = payload["EventId"].as_str().unwrap().to_owned();
            let target = mesolive_supervisor::hubs::wire::callbacks::canonical_target(
                event.event_type.as_deref().unwrap_or("?"),
            );
            after = seq;
            events.push((seq, id, target));
        }
    }
    events
}
