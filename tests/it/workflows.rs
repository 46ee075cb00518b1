//! Automation workflows end to end, the daemon as a process against the simulator: paper entry
//! and exit, lost responses settled through GetIdempotencyRecord with exactly one effect, a lost
//! job-completion event settled by polling, observe mode sending nothing, live mode guarded.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_api::wire::methods;
use mesolive_sim::{SimOptions, WireProfile};
use mesolive_supervisor::store::{WorkflowRecord, WorkflowState};
use serde_json::{Value, json};
use testkit::{wait_for, wait_some};

use crate::support::daemon::{BIN, Daemon, Sim};

const PAPER_STRATEGY: i64 = 101;
const LIVE_STRATEGY: i64 = 103;

/// Quick jobs and fills, arguments bound like a stock ASP.NET Core server (`--strict-types`).
fn quick_sim() -> SimOptions {
    let mut options = SimOptions {
        positions: 0,
        wire: WireProfile::strict_types(),
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options
}

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.unwrap();
    let _ = store.close().await;
    all
}

/// Waits until the workflow of `kind` reaches a final state and returns it.
async fn finished(daemon: &Daemon, kind: FlowKind) -> WorkflowRecord {
    let what = format!(
        "a finished {} workflow (log {})",
        kind.as_str(),
        daemon.log.display()
    );
    wait_some(&what, Duration::from_secs(20), || async move {
        workflows(daemon)
            .await
            .into_iter()
            .find(|w| w.kind == kind && !w.state.is_active())
    })
    .await
}

async fn entry_signal(sim: &Sim, strategy: i64, account: &str) {
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": strategy, "account": account}),
    )
    .await;
}

async fn ledger(sim: &Sim) -> Value {
    sim.get("/ledger").await
}

fn state_changing_calls(calls: &[(String, String)]) -> Vec<String> {
    calls
        .iter()
        .filter(|(_, m)| methods::is_state_changing(m))
        .map(|(_, m)| m.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_entry_then_exit_end_to_end() {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(Duration::from_secs(20)).await;

    entry_signal(&sim, PAPER_STRATEGY, "PAPER-1").await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(entry.state, WorkflowState::Done, "{entry:?}");
    assert_eq!(entry.groups_done.len(), 2);
    let store = daemon.store().await;
    let position = wait_some(
        "the entered position open in the daemon's state",
        Duration::from_secs(5),
        || async {
            let open = store.open_positions().await.unwrap();
            open.iter()
                .find(|p| p.strategy_id == PAPER_STRATEGY)
                .map(|p| p.position_id)
        },
    )
    .await;

    sim.post(
        "/signals",
        json!({"kind": "exit", "state": "On", "strategy_id": PAPER_STRATEGY, "position_id": position}),
    )
    .await;
    let exit = finished(&daemon, FlowKind::Exit).await;
    assert_eq!(exit.state, WorkflowState::Done, "{exit:?}");
    wait_for(
        "the position closed in the daemon's state",
        Duration::from_secs(5),
        || async {
            store
                .position(position)
                .await
                .unwrap()
                .is_some_and(|p| p.state == mesolive_supervisor::store::PositionState::Closed)
        },
    )
    .await;
    let ledger = ledger(&sim).await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(
        ledger["total_effects"], 4,
        "two leg groups in, two out: {ledger}"
    );
    assert_eq!(daemon.metric("mesolive_monitors_running").await, Some(0.0));
}

/// The simulator applies the call, then loses its answer (connection dropped): the daemon must
/// settle through GetIdempotencyRecord and never cause a second effect.
async fn lost_completion_case(method: &str, mode: &str, live: bool) {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let mut env = vec![(
        "MESOLIVE__AUTOMATION__MODE",
        if live { "live" } else { "paper" },
    )];
    if live {
        env.push(("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "103"));
        env.push(("MESOLIVE__AUTOMATION__ORDER_TYPE", "market"));
    }
    let daemon = Daemon::spawn(&sim, dir.path(), &env);
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.post(
        "/faults",
        json!({"lose_completion": {"method": method, "count": 1, "mode": mode}}),
    )
    .await;
    let (strategy, account) = if live {
        (LIVE_STRATEGY, "LIVE-1")
    } else {
        (PAPER_STRATEGY, "PAPER-1")
    };
    entry_signal(&sim, strategy, account).await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(
        entry.state,
        WorkflowState::Done,
        "{method}/{mode}: {entry:?}"
    );
    let stats = sim.get("/stats").await;
    assert_eq!(stats["faults_injected"]["lose_completion"], 1, "{stats}");
    let calls = sim.requests().await;
    assert!(
        calls.iter().any(|(_, m)| m == "GetIdempotencyRecord"),
        "{method}: settled through the idempotency record: {calls:?}"
    );
    let ledger = ledger(&sim).await;
    assert_eq!(ledger["second_effects"], 0, "{method}/{mode}: {ledger}");
    assert_eq!(
        ledger["total_effects"], 2,
        "one effect per leg group: {ledger}"
    );
    let sends = state_changing_calls(&calls)
        .iter()
        .filter(|m| *m == method)
        .count();
    // Never resent: one prepare, or one call per leg group.
    let expected = if method.starts_with("StartPrepare") {
        1
    } else {
        2
    };
    assert_eq!(sends, expected, "{method} sent {sends} times: {calls:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_apply_paper_fills_answer_is_settled_once() {
    lost_completion_case("ApplyPaperFills", "drop", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_start_prepare_answer_is_settled_once() {
    lost_completion_case("StartPreparePositionEntry", "drop", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_send_order_answer_is_settled_once() {
    lost_completion_case("SendOrder", "drop", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_send_order_timeout_is_settled_once() {
    lost_completion_case("SendOrder", "silence", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_job_completion_event_is_settled_by_polling() {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.post("/faults", json!({"lose_job_events": 1})).await;
    entry_signal(&sim, PAPER_STRATEGY, "PAPER-1").await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(entry.state, WorkflowState::Done, "{entry:?}");
    let stats = sim.get("/stats").await;
    assert_eq!(stats["faults_injected"]["lose_job_event"], 1, "{stats}");
    let calls = sim.requests().await;
    assert!(
        calls
            .iter()
            .any(|(_, m)| m == "GetPreparePositionEntryStatus"),
        "the job was polled: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observe_mode_sends_nothing_that_changes_state() {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry_signal(&sim, PAPER_STRATEGY, "PAPER-1").await;
    entry_signal(&sim, LIVE_STRATEGY, "LIVE-1").await;
    wait_for(
        "two observed workflows",
        Duration::from_secs(10),
        || async {
            workflows(&daemon)
                .await
                .iter()
                .filter(|w| w.state == WorkflowState::Observed)
                .count()
                == 2
        },
    )
    .await;
    let calls = sim.requests().await;
    assert_eq!(
        state_changing_calls(&calls),
        Vec::<String>::new(),
        "{calls:?}"
    );
    assert_eq!(ledger(&sim).await["total_effects"], 0);
    let reasons: Vec<String> = workflows(&daemon)
        .await
        .iter()
        .filter_map(|w| w.reason.clone())
        .collect();
    assert!(reasons.iter().all(|r| r.contains("would")), "{reasons:?}");
}

#[test]
fn live_mode_without_an_allow_list_refuses_to_start() {
    let out = std::process::Command::new(BIN)
        .arg("run")
        .env_clear()
        .env("MESOLIVE_API_KEY", "k")
        .env("MESOLIVE__AUTOMATION__MODE", "live")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("automation.allow_strategies"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paper_mode_never_trades_a_broker_account() {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry_signal(&sim, LIVE_STRATEGY, "LIVE-1").await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(entry.state, WorkflowState::Cancelled, "{entry:?}");
    assert!(entry.reason.unwrap_or_default().contains("paper mode"));
    assert_eq!(
        state_changing_calls(&sim.requests().await),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_going_off_while_preparing_cancels_the_job() {
    let mut options = quick_sim();
    options.timing.prepare_delay = Duration::from_secs(3);
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry_signal(&sim, PAPER_STRATEGY, "PAPER-1").await;
    wait_for("the entry preparing", Duration::from_secs(5), || async {
        workflows(&daemon)
            .await
            .iter()
            .any(|w| w.state == WorkflowState::Preparing)
    })
    .await;
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "Off", "strategy_id": PAPER_STRATEGY, "account": "PAPER-1"}),
    )
    .await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(entry.state, WorkflowState::Cancelled, "{entry:?}");
    let calls = sim.requests().await;
    assert!(
        calls.iter().any(|(_, m)| m == "CancelPreparePositionEntry"),
        "best-effort cancel sent: {calls:?}"
    );
    assert_eq!(ledger(&sim).await["total_effects"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_still_processing_is_waited_for_not_resent() {
    let sim = Sim::start(quick_sim()).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &[("MESOLIVE__AUTOMATION__MODE", "paper")]);
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.post(
        "/faults",
        json!({"hold_processing_ms": 1500,
               "lose_completion": {"method": "ApplyPaperFills", "count": 1, "mode": "drop"}}),
    )
    .await;
    entry_signal(&sim, PAPER_STRATEGY, "PAPER-1").await;
    let entry = finished(&daemon, FlowKind::Entry).await;
    assert_eq!(entry.state, WorkflowState::Done, "{entry:?}");
    let calls = sim.requests().await;
    let record_reads = calls
        .iter()
        .filter(|(_, m)| m == "GetIdempotencyRecord")
        .count();
    assert!(
        record_reads >= 2,
        "Processing was re-checked, not resent: {calls:?}"
    );
    let fills = calls.iter().filter(|(_, m)| m == "ApplyPaperFills").count();
    assert_eq!(fills, 2, "one call per leg group, none resent: {calls:?}");
    let ledger = ledger(&sim).await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(ledger["total_effects"], 2, "{ledger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_vars_adjustment_needs_no_execution() {
    let mut options = quick_sim();
    options.positions = 1;
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__AUTOMATION__ADJUSTMENT_OPERATION", "UpdateVars"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    let store = daemon.store().await;
    let position = store.open_positions().await.unwrap().remove(0);
    sim.post(
        "/signals",
        json!({"kind": "adjustment", "state": "On", "strategy_id": position.strategy_id,
               "position_id": position.position_id, "condition": "roll-short-put"}),
    )
    .await;
    let adjustment = finished(&daemon, FlowKind::Adjustment).await;
    assert_eq!(adjustment.state, WorkflowState::Done, "{adjustment:?}");
    assert!(adjustment.reason.unwrap_or_default().contains("UpdateVars"));
    assert!(adjustment.groups_done.is_empty());
    let calls = sim.requests().await;
    assert_eq!(
        state_changing_calls(&calls),
        vec!["StartPreparePositionAdjustment".to_owned()],
        "{calls:?}"
    );
}
