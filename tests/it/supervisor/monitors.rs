//! Position monitors at scale: one stream per open position, stopped exactly when positions
//! close, and resumed — each with a fresh snapshot — after an outage.

use std::time::Duration;

use mesolive_sim::SimOptions;
use mesolive_supervisor::store::Timestamp;
use serde_json::json;
use testkit::wait_for;

use crate::support::daemon::{Daemon, Sim};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_monitor_per_open_position_through_closes_and_an_outage() {
    let sim = Sim::start(SimOptions {
        positions: 200,
        ..SimOptions::default()
    })
    .await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(30)).await;
    wait_for("200 monitors", Duration::from_secs(20), || async {
        daemon.metric("mesolive_monitors_running").await == Some(200.0)
    })
    .await;
    wait_for(
        "200 streams delivering",
        Duration::from_secs(20),
        || async { daemon.metric("mesolive_positions_stale").await == Some(0.0) },
    )
    .await;

    let store = daemon.store().await;
    let open: Vec<i64> = store
        .open_positions()
        .await
        .unwrap()
        .iter()
        .map(|p| p.position_id)
        .collect();
    assert_eq!(open.len(), 200);
    let closing: Vec<i64> = open.iter().copied().step_by(4).collect();
    assert_eq!(closing.len(), 50);
    let closed = sim.post("/positions/close", json!({"ids": closing})).await;
    assert_eq!(
        closed["closed"].as_array().map(Vec::len),
        Some(50),
        "{closed}"
    );
    wait_for(
        "150 monitors after 50 closes",
        Duration::from_secs(10),
        || async { daemon.metric("mesolive_monitors_running").await == Some(150.0) },
    )
    .await;
    let still_open: Vec<i64> = store
        .monitored_positions()
        .await
        .unwrap()
        .iter()
        .map(|p| p.position_id)
        .collect();
    let expected: Vec<i64> = open
        .iter()
        .copied()
        .filter(|id| !closing.contains(id))
        .collect();
    assert_eq!(still_open, expected, "exactly the closed positions stopped");

    let snapshots_before = snapshot_calls(&sim).await;
    let outage_start = Timestamp::now();
    sim.post("/outage", json!({"ms": 1000})).await;
    wait_for(
        "not ready during the outage",
        Duration::from_secs(5),
        || async { daemon.readyz().await == Some(503) },
    )
    .await;
    daemon.wait_ready(Duration::from_secs(20)).await;
    wait_for(
        "every monitor resynced after the outage",
        Duration::from_secs(20),
        || async {
            let positions = store.monitored_positions().await.unwrap();
            positions.len() == 150
                && positions
                    .iter()
                    .all(|p| p.snapshot_at.is_some_and(|at| at > outage_start))
        },
    )
    .await;
    assert!(
        snapshot_calls(&sim).await >= snapshots_before + 150,
        "a fresh snapshot per stream"
    );
    assert!(
        daemon
            .metric("mesolive_stream_restarts_total")
            .await
            .unwrap_or(0.0)
            >= 150.0
    );
    assert_eq!(
        daemon.metric("mesolive_monitors_running").await,
        Some(150.0)
    );
    wait_for(
        "streams delivering again",
        Duration::from_secs(20),
        || async { daemon.metric("mesolive_positions_stale").await == Some(0.0) },
    )
    .await;
}

async fn snapshot_calls(sim: &Sim) -> u64 {
    sim.get("/stats").await["calls"]["GetPositionSnapshot"]
        .as_u64()
        .unwrap_or(0)
}
