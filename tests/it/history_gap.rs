//! History the server no longer has (API §6.3), against the daemon as a process: the
//! simulator keeps only its latest 1,000 events and refuses an older cursor (`error`) or
//! starts the page at the oldest event it still has (`gap`). The daemon detects the hole, says
//! it loudly (an error line, `mesolive_history_gaps_total`, `history_gaps` in `state`),
//! resyncs from the Control Hub, moves its cursor past the hole and goes on — or, with
//! `events.on_history_gap = "stop"`, exits 66 with a one-line reason.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_api::client::{ControlHub, HubClient};
use mesolive_api::models::{Order, OrderState};
use mesolive_api::wire::{args, methods};
use mesolive_sim::SimOptions;
use mesolive_supervisor::store::{WorkflowRecord, WorkflowState};
use serde_json::{Value, json};
use signalr::{ConnectOptions, Connection};
use testkit::{wait_for, wait_some};

use crate::support::daemon::{Daemon, Sim};

/// Events the simulator keeps for `GetEventsSince`.
const RETENTION: i64 = 1_000;
const WAIT: Duration = Duration::from_secs(30);
/// `supervisor.backoff_max` of the test daemons (`support::daemon`), plus the 5 s the daemon
/// has to become ready after the resync.
const READY_AFTER_RESYNC: Duration = Duration::from_millis(400 + 5_000);
/// Live entries on LIVE-1 (orders), the stale entry's strategy on PAPER-1.
const LIVE_STRATEGY: i64 = 103;
const STALE_STRATEGY: i64 = 101;
/// Outside the allow list: its entry makes a cancelled workflow, a marker that the workflow
/// runner has seen every signal stored before it.
const MARKER_STRATEGY: i64 = 102;
const LIVE: [(&str, &str); 3] = [
    ("MESOLIVE__AUTOMATION__MODE", "live"),
    ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101,103"),
    ("MESOLIVE__AUTOMATION__ORDER_TYPE", "market"),
];

/// Two open positions; orders fill 2 s after they are sent, so a daemon stopped right after
/// sending them misses the fills.
fn sim_options(mode: &str) -> SimOptions {
    let mut options = SimOptions {
        positions: 2,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_secs(2);
    options.faults.retention = Some(RETENTION as u64);
    options.faults.retention_mode = Some(match mode {
        "gap" => mesolive_sim::RetentionMode::Gap,
        _ => mesolive_sim::RetentionMode::Error,
    });
    options
}

/// A Control Hub client, as any MesoLive client would connect.
async fn control(sim: &Sim) -> (Arc<Connection>, ControlHub) {
    let url = format!("{}/hubs/control/v1", sim.running.hub_base_url());
    let options =
        ConnectOptions::new(url.parse().expect("hub URL")).with_access_token(sim.running.token());
    let connection = Arc::new(Connection::connect(options).await.expect("control hub"));
    (connection.clone(), ControlHub(HubClient::new(connection)))
}

/// The positions the simulator has open, read through the Control Hub.
async fn server_open_positions(sim: &Sim) -> BTreeSet<i64> {
    let (connection, control) = control(sim).await;
    let open = control
        .list_open_positions(200)
        .await
        .expect("ListPositions");
    connection.close().await;
    open.iter().map(|p| p.id).collect()
}

/// Every order the simulator has, read through the Control Hub.
async fn server_orders(sim: &Sim) -> Vec<Order> {
    let (connection, control) = control(sim).await;
    let orders = control
        .0
        .call_paged(methods::LIST_ORDERS, |token| args::page(Some(200), token))
        .await
        .expect("ListOrders");
    connection.close().await;
    orders
}

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.expect("workflows");
    let _ = store.close().await;
    all
}

async fn monitored(daemon: &Daemon) -> BTreeSet<i64> {
    let store = daemon.store().await;
    let positions = store.monitored_positions().await.expect("positions");
    let _ = store.close().await;
    positions.iter().map(|p| p.position_id).collect()
}

fn state(daemon: &Daemon) -> Value {
    serde_json::from_str(&daemon.state_json()).expect("state --json is JSON")
}

/// The history gaps `state --json` lists.
fn history_gaps(daemon: &Daemon) -> Vec<Value> {
    state(daemon)["history_gaps"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("state --json has no history_gaps: {}", state(daemon)))
}

async fn entry(sim: &Sim, strategy: i64, account: &str, on: &str) {
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": on, "strategy_id": strategy, "account": account}),
    )
    .await;
}

/// The marker entry's workflow exists: every signal stored before it has been seen.
async fn marker_passed(sim: &Sim, daemon: &Daemon) {
    entry(sim, MARKER_STRATEGY, "PAPER-1", "On").await;
    wait_for("the marker's workflow", WAIT, || async {
        workflows(daemon)
            .await
            .iter()
            .any(|w| w.strategy_id == MARKER_STRATEGY)
    })
    .await;
}

/// The one gap recorded has these bounds and was resolved by a resync.
fn assert_one_gap(daemon: &Daemon, from: i64, to: i64) {
    let gaps = history_gaps(daemon);
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    let gap = &gaps[0];
    assert_eq!(
        (gap["from"].as_i64(), gap["to"].as_i64()),
        (Some(from), Some(to)),
        "{gap:#}"
    );
    assert_eq!(gap["events"].as_i64(), Some(to - from + 1), "{gap:#}");
    assert_eq!(gap["resolution"], "resynced", "{gap:#}");
    assert!(gap["detected_at"].is_string(), "{gap:#}");
}

/// Said loudly: one error line with the hole, and the counter.
async fn assert_loud(daemon: &Daemon, from: i64, to: i64) {
    let log = daemon.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("\"level\":\"ERROR\"") && line.contains("history gap"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line for the hole:\n{log}");
    for field in [format!("\"from\":{from}"), format!("\"to\":{to}")] {
        assert!(errors[0].contains(&field), "{field} in {}", errors[0]);
    }
    assert_eq!(
        daemon.metric("mesolive_history_gaps_total").await,
        Some(1.0)
    );
}

/// The daemon is stopped while the server moves on past its retention: a live entry's orders
/// fill, positions open and close, an entry signal turns On then Off, and 3,000 more events
/// push all of it out of the history the server keeps.
async fn hole_while_stopped(mode: &str) {
    let sim = Sim::start(sim_options(mode)).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &LIVE);
    daemon.wait_ready(WAIT).await;

    entry(&sim, LIVE_STRATEGY, "LIVE-1", "On").await;
    wait_for("both leg groups sent", WAIT, || async {
        workflows(&daemon)
            .await
            .iter()
            .any(|w| w.kind == FlowKind::Entry && w.groups_done.len() == 2)
    })
    .await;
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(WAIT).await.success());
    let cursor = daemon.cursor().await.expect("a cursor");

    wait_for(
        "the orders filled while the daemon is down",
        WAIT,
        || async {
            let orders = server_orders(&sim).await;
            !orders.is_empty() && orders.iter().all(|o| o.state == OrderState::Filled)
        },
    )
    .await;
    let opened = sim.post("/positions/open", json!({"count": 2})).await;
    let opened: Vec<i64> = opened["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_i64)
        .collect();
    sim.post("/positions/close", json!({"ids": [1001, opened[0]]}))
        .await;
    entry(&sim, STALE_STRATEGY, "PAPER-1", "On").await;
    entry(&sim, STALE_STRATEGY, "PAPER-1", "Off").await;
    sim.emit(3 * RETENTION as u64).await;
    let latest = sim.latest_seq().await;
    let (from, to) = match mode {
        "gap" => (cursor + 1, latest - RETENTION),
        _ => (cursor + 1, latest),
    };

    daemon.start();
    daemon.wait_ready(READY_AFTER_RESYNC).await;
    assert_one_gap(&daemon, from, to);
    assert_loud(&daemon, from, to).await;
    assert_eq!(monitored(&daemon).await, server_open_positions(&sim).await);

    // The live entry learns its fills from the resync and finishes.
    let live = wait_some("the live entry finished", WAIT, || async {
        workflows(&daemon)
            .await
            .into_iter()
            .find(|w| w.strategy_id == LIVE_STRATEGY && !w.state.is_active())
    })
    .await;
    assert_eq!(live.state, WorkflowState::Done, "{live:#?}");
    // The entry signal On then Off inside the hole starts nothing.
    marker_passed(&sim, &daemon).await;
    let stale: Vec<WorkflowRecord> = workflows(&daemon)
        .await
        .into_iter()
        .filter(|w| w.strategy_id == STALE_STRATEGY)
        .collect();
    assert!(stale.is_empty(), "{stale:#?}");
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    let latest = sim.latest_seq().await;
    wait_for("the cursor at the latest event", WAIT, || async {
        daemon.cursor().await == Some(latest)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_history_refused_with_an_error_is_resynced_and_the_daemon_goes_on()
{
    hole_while_stopped("error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_that_silently_starts_past_the_cursor_is_resynced_and_the_daemon_goes_on() {
    hole_while_stopped("gap").await;
}

/// The same hole met while connected: live events are lost (suppressed) while the server
/// moves past its retention, and a position closes among them; the next live event jumps, and
/// the catch-up page starts late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_jump_whose_catch_up_starts_late_is_resynced() {
    let sim = Sim::start(sim_options("gap")).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(WAIT).await;
    let cursor = daemon.cursor().await.expect("a cursor");
    assert_eq!(cursor, sim.latest_seq().await);

    sim.faults(json!({"suppress_events": 10 * RETENTION})).await;
    sim.post("/positions/close", json!({"ids": [1001]})).await;
    sim.emit(2 * RETENTION as u64).await;
    sim.faults(json!({"suppress_events": 0})).await;
    sim.emit(1).await;
    let latest = sim.latest_seq().await;

    let gaps = wait_some("a history gap recorded", WAIT, || async {
        let gaps = history_gaps(&daemon);
        (!gaps.is_empty()).then_some(gaps)
    })
    .await;
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_one_gap(&daemon, cursor + 1, latest - RETENTION);
    daemon.wait_ready(READY_AFTER_RESYNC).await;
    assert_loud(&daemon, cursor + 1, latest - RETENTION).await;
    wait_for("the cursor at the latest event", WAIT, || async {
        daemon.cursor().await == Some(latest)
    })
    .await;
    assert_eq!(monitored(&daemon).await, server_open_positions(&sim).await);
    assert!(!monitored(&daemon).await.contains(&1001));
}

/// `events.on_history_gap = "stop"`: the hole is recorded, and the daemon exits with the
/// status systemd does not restart and a one-line reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_history_gap_stop_exits_66_with_a_one_line_reason() {
    let sim = Sim::start(sim_options("error")).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[("MESOLIVE__EVENTS__ON_HISTORY_GAP", "stop")],
    );
    daemon.wait_ready(WAIT).await;
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(WAIT).await.success());
    let cursor = daemon.cursor().await.expect("a cursor");
    sim.emit(2 * RETENTION as u64).await;
    let latest = sim.latest_seq().await;

    daemon.start();
    let status = daemon.wait_exit(WAIT).await;
    assert_eq!(status.code(), Some(66), "{}", daemon.log_text());
    let log = daemon.log_text();
    let reason = log
        .lines()
        .rfind(|line| line.starts_with("mesolive-supervisor: "))
        .unwrap_or_else(|| panic!("no one-line reason:\n{log}"));
    for needle in [
        "history".to_owned(),
        (cursor + 1).to_string(),
        latest.to_string(),
        "on_history_gap".to_owned(),
    ] {
        assert!(reason.contains(&needle), "{needle} in {reason}");
    }
    let gaps = history_gaps(&daemon);
    assert_eq!(gaps.len(), 1, "{gaps:#?}");
    assert_eq!(gaps[0]["resolution"], "stopped");
}
