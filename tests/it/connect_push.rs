//! On-connect pushes, in every form API §4.2/§6.5 allows, against the daemon as a process:
//! the active state the server pushes before any subscribe is current state, not a broken
//! sequence. An exit signal active before the daemon's first start (`events.first_run =
//! "latest"`) closes its position whether the push lacks its EventSeqId (`bare`) or repeats it
//! (`repeat`); with no push at all (`none`) the daemon can only know what history from its
//! cursor tells it. A re-asserted state older than the stored one changes nothing, and a new
//! order or position event below the cursor is still quarantined.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_sim::SimOptions;
use mesolive_supervisor::store::{PositionState, SignalState, WorkflowRecord, WorkflowState};
use serde_json::json;
use sqlx::Connection as _;
use testkit::{wait_for, wait_some};

use crate::support::daemon::{Daemon, Sim};

/// The seeded position (strategy 101 on the paper account).
const POSITION: i64 = 1001;
const STRATEGY: i64 = 101;
/// A strategy outside the allow list: its entry signal makes a cancelled workflow, a marker
/// that the workflow runner has seen every signal stored before it.
const MARKER_STRATEGY: i64 = 102;
const WAIT: Duration = Duration::from_secs(20);
/// Paper mode, strategy 101 allowed.
const PAPER: [(&str, &str); 2] = [
    ("MESOLIVE__AUTOMATION__MODE", "paper"),
    ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101"),
];

/// One open position on the paper account, quick jobs and fills.
fn sim_options() -> SimOptions {
    let mut options = SimOptions {
        positions: 1,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options
}

/// A simulator pushing `form` on connect, with the seeded position's exit signal On and then
/// 20 more events, so the daemon's first cursor (the latest) is well past the signal.
async fn exit_signal_active(form: &str) -> (Sim, String) {
    let sim = Sim::start(sim_options()).await;
    sim.faults(json!({"connect_push": form})).await;
    let on = sim
        .post(
            "/signals",
            json!({"kind": "exit", "state": "On", "position_id": POSITION}),
        )
        .await;
    sim.emit(20).await;
    let id = on["event_id"].as_str().expect("event_id").to_owned();
    (sim, id)
}

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.expect("workflows");
    let _ = store.close().await;
    all
}

/// Waits for the exit workflow to finish and returns it.
async fn finished_exit(daemon: &Daemon) -> WorkflowRecord {
    let what = format!("a finished exit workflow (log {})", daemon.log.display());
    wait_some(&what, WAIT, || async {
        workflows(daemon)
            .await
            .into_iter()
            .find(|w| w.kind == FlowKind::Exit && !w.state.is_active())
    })
    .await
}

/// Raises the marker entry signal and waits for its workflow: every signal stored before it
/// has been through the workflow runner too.
async fn marker_passed(sim: &Sim, daemon: &Daemon) {
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": MARKER_STRATEGY, "account": "PAPER-1"}),
    )
    .await;
    wait_for("the marker's workflow", WAIT, || async {
        workflows(daemon)
            .await
            .iter()
            .any(|w| w.strategy_id == MARKER_STRATEGY)
    })
    .await;
}

fn exits(workflows: &[WorkflowRecord]) -> Vec<&WorkflowRecord> {
    workflows
        .iter()
        .filter(|w| w.kind == FlowKind::Exit)
        .collect()
}

async fn position_state(daemon: &Daemon) -> Option<PositionState> {
    let store = daemon.store().await;
    let position = store.position(POSITION).await.expect("position");
    let _ = store.close().await;
    position.map(|p| p.state)
}

/// The exit ran in paper mode and the position is closed, on the server (two leg groups
/// filled, no second effect) and in the daemon's state (from the server's Closed event).
async fn assert_exited(sim: &Sim, daemon: &Daemon) {
    let exit = finished_exit(daemon).await;
    assert_eq!(exit.state, WorkflowState::Done, "{exit:?}");
    assert_eq!(exit.position_id, Some(POSITION));
    wait_for(
        "the position closed in the daemon's state",
        WAIT,
        || async { position_state(daemon).await == Some(PositionState::Closed) },
    )
    .await;
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(
        ledger["total_effects"], 2,
        "two leg groups closed: {ledger}"
    );
}

/// Nothing was taken for a broken sequence: no quarantined event, no regression counted, no
/// line about a sequence going backwards.
async fn assert_no_regression(daemon: &Daemon) {
    let quarantined = daemon.quarantined().await;
    assert!(quarantined.is_empty(), "quarantined: {quarantined:#?}");
    assert_eq!(daemon.errors("event_seq_regression").await, 0.0);
    let log = daemon.log_text();
    assert!(
        !log.contains("went backwards"),
        "a sequence reported as going backwards:\n{log}"
    );
}

async fn exit_active_before_the_first_start(form: &str) {
    let (sim, _) = exit_signal_active(form).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(&sim, dir.path(), &PAPER);
    daemon.wait_ready(WAIT).await;
    assert_exited(&sim, &daemon).await;
    assert_no_regression(&daemon).await;
    if form == "repeat" {
        let reasserted = daemon.metric("mesolive_events_reasserted_total").await;
        assert!(
            reasserted >= Some(1.0),
            "re-assertions counted: {reasserted:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_push_of_an_exit_signal_active_before_the_first_start_closes_the_position() {
    exit_active_before_the_first_start("bare").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_push_of_an_exit_signal_active_before_the_first_start_closes_the_position() {
    exit_active_before_the_first_start("repeat").await;
}

/// With no push, a first start at the latest event cannot know a signal raised before it: the
/// API has no call that lists active signals, and history from the latest holds nothing. It
/// knows the position (the Control Hub lists it) and it knows everything that happens from
/// its cursor on, so the signal raised again while it is stopped is replayed and acted on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_push_a_signal_raised_before_the_first_start_is_unknown_until_history_tells_it() {
    let (sim, _) = exit_signal_active("none").await;
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::spawn(&sim, dir.path(), &PAPER);
    daemon.wait_ready(WAIT).await;
    // Live events come after whatever the connection was told on connect.
    marker_passed(&sim, &daemon).await;
    let store = daemon.store().await;
    let signals = store.signals().await.unwrap();
    let open = store.open_positions().await.unwrap();
    let _ = store.close().await;
    assert!(
        signals.iter().all(|s| s.kind != FlowKind::Exit),
        "no exit signal can be known: {signals:#?}"
    );
    assert!(
        open.iter().any(|p| p.position_id == POSITION),
        "the position is known from the Control Hub: {open:#?}"
    );
    assert!(exits(&workflows(&daemon).await).is_empty());

    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(WAIT).await.success());
    for state in ["Off", "On"] {
        sim.post(
            "/signals",
            json!({"kind": "exit", "state": state, "position_id": POSITION}),
        )
        .await;
    }
    daemon.start();
    daemon.wait_ready(WAIT).await;
    assert_exited(&sim, &daemon).await;
    assert_no_regression(&daemon).await;
}

/// With no push and `first_run = "all"`, the whole history is replayed: the active signal is
/// in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_push_a_first_run_over_all_history_learns_the_active_signal() {
    let (sim, _) = exit_signal_active("none").await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[PAPER[0], PAPER[1], ("MESOLIVE__EVENTS__FIRST_RUN", "all")],
    );
    daemon.wait_ready(WAIT).await;
    assert_exited(&sim, &daemon).await;
    assert_no_regression(&daemon).await;
}

/// Whether the dedupe set holds the key `event_id`.
async fn processed(daemon: &Daemon, event_id: &str) -> bool {
    let url = format!("sqlite://{}?mode=ro", daemon.db.display());
    let mut conn = sqlx::SqliteConnection::connect(&url)
        .await
        .expect("database readable");
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM processed_events WHERE event_key = ?")
            .bind(event_id.to_ascii_lowercase())
            .fetch_one(&mut conn)
            .await
            .expect("processed_events");
    let _ = conn.close().await;
    count > 0
}

/// The server still pushes the exit signal's old On (it missed its own Off, which went out as
/// a later event), the daemon holds that later Off, and the On's key has left the dedupe set:
/// the re-asserted On is older than the stored Off and changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reasserted_on_older_than_a_stored_off_starts_nothing() {
    let (sim, on_id) = exit_signal_active("repeat").await;
    sim.inject(
        "OnExitSignal",
        json!({"State": "Off", "StrategyId": STRATEGY, "StrategyName": "SPX Iron Condor 45DTE",
               "PositionId": POSITION, "PositionName": "p", "BrokerAccountId": "PAPER-1"}),
        json!({}),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            PAPER[0],
            PAPER[1],
            ("MESOLIVE__EVENTS__FIRST_RUN", "all"),
            ("MESOLIVE__EVENTS__DEDUPE_WINDOW", "1s"),
        ],
    );
    daemon.wait_ready(WAIT).await;
    wait_for("the On's key pruned from the dedupe set", WAIT, || async {
        !processed(&daemon, &on_id).await
    })
    .await;
    // A new connection is pushed the old On again.
    sim.drop_hub(Some("event")).await;
    wait_for("the pushed On processed again", WAIT, || async {
        processed(&daemon, &on_id).await
    })
    .await;
    let store = daemon.store().await;
    let signals = store.signals().await.unwrap();
    let _ = store.close().await;
    let exit = signals
        .iter()
        .find(|s| s.kind == FlowKind::Exit && s.position_id == Some(POSITION))
        .expect("the exit signal is stored");
    assert_eq!(exit.state, SignalState::Off, "{exit:#?}");
    marker_passed(&sim, &daemon).await;
    let started = workflows(&daemon).await;
    assert!(exits(&started).is_empty(), "nothing started: {started:#?}");
    assert_no_regression(&daemon).await;
    assert!(daemon.metric("mesolive_events_reasserted_total").await >= Some(1.0));
}

/// A new order or position event below the cursor is a broken sequence, not a state: still
/// quarantined with its reason, never acted on, under the `repeat` form too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_order_or_position_event_below_the_cursor_is_still_quarantined() {
    let sim = Sim::start(sim_options()).await;
    sim.faults(json!({"connect_push": "repeat"})).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::spawn(&sim, dir.path(), &PAPER);
    daemon.wait_ready(WAIT).await;
    sim.inject(
        "OnOrderUpdate",
        json!({"OrderId": 777, "StrategyId": STRATEGY, "StrategyName": "s", "State": "Filled"}),
        json!({"EventSeqId": 2}),
    )
    .await;
    sim.inject(
        "OnPositionUpdate",
        json!({"PositionId": POSITION, "StrategyId": STRATEGY, "StrategyName": "s",
               "PositionName": "p", "BrokerAccountId": "PAPER-1", "Status": "Closed"}),
        json!({"EventSeqId": 3}),
    )
    .await;
    let quarantined = wait_some("two quarantined events", WAIT, || async {
        let rows = daemon.quarantined().await;
        (rows.len() == 2).then_some(rows)
    })
    .await;
    for row in &quarantined {
        assert!(
            row.error.contains("went backwards"),
            "{}: {}",
            row.target,
            row.error
        );
    }
    assert_eq!(daemon.errors("event_seq_regression").await, 2.0);
    assert_eq!(position_state(&daemon).await, Some(PositionState::Open));
}
