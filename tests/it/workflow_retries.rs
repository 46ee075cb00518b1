//! Retries and deadlines, the daemon as a process against the simulator: a failed exit is
//! retried while its signal holds (and not once it went Off, and across a SIGKILL), a prepare
//! job silent past its deadline is polled then cancelled, a live order that never fills is
//! cancelled at its deadline through a keyed CancelOrder (also when that answer is lost) and the
//! next entry of the strategy + account proceeds; live entries and exits complete.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_sim::SimOptions;
use mesolive_supervisor::store::{IntentState, PositionState, WorkflowRecord, WorkflowState};
use serde_json::{Value, json};
use testkit::{wait_for, wait_some};

use crate::support::daemon::{Daemon, Sim};

const LIVE_STRATEGY: i64 = 103;

fn quick_sim(positions: usize) -> SimOptions {
    let mut options = SimOptions {
        positions,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options
}

/// Paper mode, retries after 300 ms doubling to 1 s.
const PAPER_QUICK_RETRY: [(&str, &str); 3] = [
    ("MESOLIVE__AUTOMATION__MODE", "paper"),
    ("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF", "300ms"),
    ("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF_MAX", "1s"),
];

/// Live mode on strategy 103 with limit orders that get 2 s to fill.
const LIVE_QUICK_DEADLINE: [(&str, &str); 4] = [
    ("MESOLIVE__AUTOMATION__MODE", "live"),
    ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "103"),
    ("MESOLIVE__AUTOMATION__ORDER_TYPE", "limit_mid"),
    ("MESOLIVE__AUTOMATION__ORDER_TIMEOUT", "2s"),
];

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.unwrap();
    let _ = store.close().await;
    all
}

/// The first open position of the daemon's state (the simulator opened it at start).
async fn open_position(daemon: &Daemon) -> (i64, i64) {
    let store = daemon.store().await;
    let position = store.open_positions().await.unwrap().remove(0);
    let _ = store.close().await;
    (position.strategy_id, position.position_id)
}

async fn position_state(daemon: &Daemon, position: i64) -> Option<PositionState> {
    let store = daemon.store().await;
    let state = store.position(position).await.unwrap().map(|p| p.state);
    let _ = store.close().await;
    state
}

async fn exit_signal(sim: &Sim, strategy: i64, position: i64, state: &str) {
    sim.post(
        "/signals",
        json!({"kind": "exit", "state": state, "strategy_id": strategy, "position_id": position}),
    )
    .await;
}

async fn entry_signal(sim: &Sim, state: &str) {
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": state, "strategy_id": LIVE_STRATEGY, "account": "LIVE-1"}),
    )
    .await;
}

/// Waits for a finished workflow of `kind` that satisfies `pick`.
async fn finished_where(
    daemon: &Daemon,
    kind: FlowKind,
    what: &str,
    pick: impl Fn(&WorkflowRecord) -> bool,
) -> WorkflowRecord {
    let what = format!("{what} (log {})", daemon.log.display());
    wait_some(&what, Duration::from_secs(30), || async {
        workflows(daemon)
            .await
            .into_iter()
            .find(|w| w.kind == kind && !w.state.is_active() && pick(w))
    })
    .await
}

fn calls_of(calls: &[(String, String)], method: &str) -> usize {
    calls.iter().filter(|(_, m)| m == method).count()
}

/// An exit whose first `failures` prepares fail closes the position on attempt
/// `failures + 1`, with one effect per leg group and no second effect.
async fn exit_retried_until_closed(failures: u32) {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &PAPER_QUICK_RETRY);
    daemon.wait_ready(Duration::from_secs(20)).await;
    let (strategy, position) = open_position(&daemon).await;
    sim.faults(json!({"fail_prepares": failures})).await;
    exit_signal(&sim, strategy, position, "On").await;

    let done = finished_where(&daemon, FlowKind::Exit, "the exit done", |w| {
        w.state == WorkflowState::Done
    })
    .await;
    assert_eq!(done.attempt, i64::from(failures) + 1, "{done:?}");
    let all = workflows(&daemon).await;
    let failed: Vec<&WorkflowRecord> = all
        .iter()
        .filter(|w| w.state == WorkflowState::Failed)
        .collect();
    assert_eq!(failed.len(), failures as usize, "{all:#?}");
    for (n, workflow) in failed.iter().enumerate() {
        assert_eq!(workflow.attempt, n as i64 + 1);
        let reason = workflow.reason.as_deref().unwrap_or_default();
        assert!(
            reason.starts_with("prepare job") && reason.contains(&format!("attempt {}", n + 2)),
            "{workflow:?}"
        );
        assert_eq!(workflow.signal_instance, done.signal_instance);
    }
    wait_for("the position closed", Duration::from_secs(10), || async {
        position_state(&daemon, position).await == Some(PositionState::Closed)
    })
    .await;
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(
        ledger["total_effects"], 2,
        "one effect per leg group: {ledger}"
    );
    let prepares = calls_of(&sim.requests().await, "StartPreparePositionExit");
    assert_eq!(prepares, failures as usize + 1, "one prepare per attempt");
    assert_eq!(
        daemon
            .metric("mesolive_workflow_retries_total{kind=\"exit\"}")
            .await,
        Some(f64::from(failures))
    );
    let state = daemon.state_json();
    assert!(
        state.contains(&format!("\"attempt\": {}", failures + 1)),
        "`state` shows attempts: {state}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_whose_first_prepare_fails_closes_on_attempt_2() {
    exit_retried_until_closed(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_whose_first_two_prepares_fail_closes_on_attempt_3() {
    exit_retried_until_closed(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_whose_first_three_prepares_fail_closes_on_attempt_4() {
    exit_retried_until_closed(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_further_attempt_once_the_exit_signal_went_off() {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let mut env = PAPER_QUICK_RETRY.to_vec();
    env.push(("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF", "2s"));
    env.push(("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF_MAX", "2s"));
    let daemon = Daemon::spawn(&sim, dir.path(), &env);
    daemon.wait_ready(Duration::from_secs(20)).await;
    let (strategy, position) = open_position(&daemon).await;
    sim.faults(json!({"fail_prepares": 5})).await;
    exit_signal(&sim, strategy, position, "On").await;
    let first = finished_where(&daemon, FlowKind::Exit, "attempt 1 failed", |w| {
        w.retry_at.is_some()
    })
    .await;
    exit_signal(&sim, strategy, position, "Off").await;
    let dropped = finished_where(&daemon, FlowKind::Exit, "the retry dropped", |w| {
        w.id == first.id && w.retry_at.is_none()
    })
    .await;
    assert!(
        dropped
            .reason
            .as_deref()
            .unwrap_or_default()
            .ends_with("not retried: the signal went Off"),
        "{dropped:?}"
    );
    // Well past the time attempt 2 was planned for: still one attempt, one prepare.
    let planned = first.retry_at.map_or(0, |at| at.unix_millis());
    wait_for(
        "the planned time and two runner ticks to pass",
        Duration::from_secs(10),
        || async { chrono::Utc::now().timestamp_millis() > planned + 2_000 },
    )
    .await;
    assert_eq!(workflows(&daemon).await.len(), 1);
    assert_eq!(
        calls_of(&sim.requests().await, "StartPreparePositionExit"),
        1
    );
    assert_eq!(
        position_state(&daemon, position).await,
        Some(PositionState::Open)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_between_attempts_keeps_the_planned_retry() {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let mut env = PAPER_QUICK_RETRY.to_vec();
    env.push(("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF", "1500ms"));
    env.push(("MESOLIVE__AUTOMATION__EXIT_RETRY_BACKOFF_MAX", "3s"));
    let mut daemon = Daemon::spawn(&sim, dir.path(), &env);
    daemon.wait_ready(Duration::from_secs(20)).await;
    let (strategy, position) = open_position(&daemon).await;
    sim.faults(json!({"fail_prepares": 2})).await;
    exit_signal(&sim, strategy, position, "On").await;
    finished_where(&daemon, FlowKind::Exit, "attempt 1 failed", |w| {
        w.attempt == 1 && w.retry_at.is_some()
    })
    .await;
    daemon.kill();
    daemon.start();
    finished_where(&daemon, FlowKind::Exit, "attempt 2 failed", |w| {
        w.attempt == 2 && w.retry_at.is_some()
    })
    .await;
    daemon.kill();
    daemon.start();
    let done = finished_where(&daemon, FlowKind::Exit, "the exit done", |w| {
        w.state == WorkflowState::Done
    })
    .await;
    assert_eq!(done.attempt, 3, "{done:?}");
    wait_for("the position closed", Duration::from_secs(10), || async {
        position_state(&daemon, position).await == Some(PositionState::Closed)
    })
    .await;
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(ledger["total_effects"], 2, "{ledger}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_prepare_job_is_polled_then_cancelled_at_its_deadline() {
    let mut options = quick_sim(1);
    options.timing.prepare_delay = Duration::from_secs(60);
    let sim = Sim::start(options).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &[
            ("MESOLIVE__AUTOMATION__MODE", "paper"),
            ("MESOLIVE__AUTOMATION__JOB_TIMEOUT", "2s"),
            ("MESOLIVE__AUTOMATION__EXIT_RETRY", "false"),
        ],
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    let (strategy, position) = open_position(&daemon).await;
    exit_signal(&sim, strategy, position, "On").await;
    let failed = finished_where(&daemon, FlowKind::Exit, "the exit settled", |_| true).await;
    assert_eq!(failed.state, WorkflowState::Failed, "{failed:?}");
    let reason = failed.reason.unwrap_or_default();
    assert!(
        reason.contains("automation.job_timeout; job cancelled")
            && reason.ends_with("not retried: automation.exit_retry is off"),
        "{reason}"
    );
    let calls = sim.requests().await;
    assert!(
        calls_of(&calls, "GetPreparePositionExitStatus") >= 1,
        "{calls:?}"
    );
    assert_eq!(
        calls_of(&calls, "CancelPreparePositionExit"),
        1,
        "{calls:?}"
    );
    let store = daemon.store().await;
    assert!(store.intents_in_flight().await.unwrap().is_empty());
    let _ = store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_entry_then_exit_end_to_end() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &LIVE_QUICK_DEADLINE);
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry_signal(&sim, "On").await;
    let entry = finished_where(&daemon, FlowKind::Entry, "the entry", |_| true).await;
    assert_eq!(entry.state, WorkflowState::Done, "{entry:?}");
    let position = wait_some("the entered position", Duration::from_secs(10), || async {
        let store = daemon.store().await;
        let open = store.open_positions().await.unwrap();
        let _ = store.close().await;
        open.iter()
            .find(|p| p.strategy_id == LIVE_STRATEGY)
            .map(|p| p.position_id)
    })
    .await;
    exit_signal(&sim, LIVE_STRATEGY, position, "On").await;
    let exit = finished_where(&daemon, FlowKind::Exit, "the exit", |_| true).await;
    assert_eq!(exit.state, WorkflowState::Done, "{exit:?}");
    wait_for("the position closed", Duration::from_secs(10), || async {
        position_state(&daemon, position).await == Some(PositionState::Closed)
    })
    .await;
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    assert_eq!(ledger["total_effects"], 4, "{ledger}");
    assert_eq!(calls_of(&sim.requests().await, "CancelOrder"), 0);
}

/// A live entry whose orders never fill: cancelled at the deadline through keyed CancelOrder
/// intents (the first answer lost when `lose_cancel`), the workflow failed, and the next entry
/// of the strategy + account proceeds once orders fill again.
async fn never_filled_entry(lose_cancel: bool) {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &LIVE_QUICK_DEADLINE);
    daemon.wait_ready(Duration::from_secs(20)).await;
    sim.faults(json!({"never_fill": true})).await;
    if lose_cancel {
        sim.faults(json!({"lose_completion": {"method": "CancelOrder", "count": 1}}))
            .await;
    }
    entry_signal(&sim, "On").await;
    let failed = finished_where(&daemon, FlowKind::Entry, "the entry settled", |_| true).await;
    assert_eq!(failed.state, WorkflowState::Failed, "{failed:?}");
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("orders not final within automation.order_timeout"),
        "{reason}"
    );
    let calls = sim.requests().await;
    assert_eq!(calls_of(&calls, "SendOrder"), 2, "{calls:?}");
    assert_eq!(
        calls_of(&calls, "CancelOrder"),
        2,
        "one keyed cancel per order, never resent: {calls:?}"
    );
    if lose_cancel {
        let stats = sim.get("/stats").await;
        assert_eq!(stats["faults_injected"]["lose_completion"], 1, "{stats}");
        assert!(calls_of(&calls, "GetIdempotencyRecord") >= 1, "{calls:?}");
    }
    let store = daemon.store().await;
    let cancels: Vec<_> = store
        .intents_in_states(&[IntentState::Completed, IntentState::Failed])
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.operation == "CancelOrder")
        .collect();
    let _ = store.close().await;
    assert_eq!(cancels.len(), 2, "{cancels:?}");
    for cancel in &cancels {
        assert_eq!(cancel.state, IntentState::Completed, "{cancel:?}");
        assert!(
            cancel.key.contains(&format!("-w{}-cancel-o", failed.id)),
            "{cancel:?}"
        );
    }
    wait_for(
        "no intent in flight by the gauge",
        Duration::from_secs(15),
        || async {
            daemon
                .metric("mesolive_intent_oldest_in_flight_seconds")
                .await
                == Some(0.0)
        },
    )
    .await;

    // The scope is free again: the next entry on the strategy + account proceeds.
    sim.faults(json!({"never_fill": false})).await;
    entry_signal(&sim, "Off").await;
    entry_signal(&sim, "On").await;
    let next = finished_where(&daemon, FlowKind::Entry, "the next entry", |w| {
        w.id != failed.id
    })
    .await;
    assert_eq!(next.state, WorkflowState::Done, "{next:?}");
    let ledger: Value = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    wait_for(
        "no active workflow by the gauge",
        Duration::from_secs(15),
        || async {
            daemon
                .metric("mesolive_workflow_oldest_active_seconds")
                .await
                == Some(0.0)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_that_never_fills_is_cancelled_at_its_deadline() {
    never_filled_entry(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_cancel_order_answer_is_settled_through_the_idempotency_record() {
    never_filled_entry(true).await;
}
