//! The trading states with signals arriving: what the simulator's request log says was sent.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{IntentState, WorkflowState};
use serde_json::json;
use testkit::wait_for;

use super::{entry, finished, ok, open_position, quick_sim, sent_since, signal, workflow_where};
use crate::support::daemon::{Daemon, Sim};

const PAPER_STRATEGY: i64 = 101;
const OTHER_STRATEGY: i64 = 102;

fn paper_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MESOLIVE__AUTOMATION__MODE", "paper"),
        ("MESOLIVE__AUTOMATION__ADJUSTMENT_OPERATION", "UpdateVars"),
    ]
}

/// Halted: over a window with an exit in flight (its prepare's answer lost, its idempotency
/// record held `Processing`), then an entry and an adjustment arriving, not one state-changing
/// call is sent; the exit's intent is settled by reading its record and its job is followed.
/// On the resume every paused workflow goes on to its end — the adjustment, whose signal went
/// Off meanwhile, is cancelled with that reason — and nothing took effect twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halted_sends_nothing_and_resume_finishes_the_paused_workflows() {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &paper_env());
    daemon.wait_ready(Duration::from_secs(20)).await;
    let exiting = open_position(&daemon, PAPER_STRATEGY).await;
    // A second position of the same strategy, for the adjustment.
    let opened = sim.post("/positions/open", json!({"count": 1})).await;
    let adjusted = opened["ids"][0].as_i64().expect("a position id");
    let store = daemon.store().await;
    wait_for(
        "the second position known",
        Duration::from_secs(10),
        || async { store.position(adjusted).await.expect("position").is_some() },
    )
    .await;

    sim.faults(json!({
        "lose_completion": {"method": "StartPreparePositionExit", "count": 1, "mode": "drop"},
        "hold_processing_ms": 3000
    }))
    .await;
    signal(
        &sim,
        json!({"kind": "exit", "state": "On", "strategy_id": PAPER_STRATEGY, "position_id": exiting}),
    )
    .await;
    wait_for(
        "the exit's prepare in flight with its outcome unknown",
        Duration::from_secs(10),
        || async {
            store
                .intents_in_flight()
                .await
                .expect("intents")
                .iter()
                .any(|i| {
                    i.operation == "StartPreparePositionExit" && i.state == IntentState::Unknown
                })
        },
    )
    .await;
    let out = daemon.ctl(&["halt", "--reason", "bad day"]);
    assert!(
        ok(&out).contains("trading state halted (was active)"),
        "{out:?}"
    );
    let halted_at = sim.requests().await.len();

    entry(&sim, OTHER_STRATEGY, "On").await;
    signal(
        &sim,
        json!({"kind": "adjustment", "state": "On", "strategy_id": PAPER_STRATEGY,
               "position_id": adjusted, "condition": "roll"}),
    )
    .await;
    let paused_entry = workflow_where(&daemon, "the entry opened while halted", |w| {
        w.kind == FlowKind::Entry && w.strategy_id == OTHER_STRATEGY
    })
    .await;
    assert_eq!(paused_entry.state, WorkflowState::Requested);
    workflow_where(&daemon, "the adjustment opened while halted", |w| {
        w.kind == FlowKind::Adjustment && w.state == WorkflowState::Requested
    })
    .await;
    signal(
        &sim,
        json!({"kind": "adjustment", "state": "Off", "strategy_id": PAPER_STRATEGY,
               "position_id": adjusted, "condition": "roll"}),
    )
    .await;
    // The exit's prepare is settled by reading (GetIdempotencyRecord once the hold is over),
    // its job followed to the plan, and there it waits.
    let exit = workflow_where(&daemon, "the exit prepared while halted", |w| {
        w.kind == FlowKind::Exit && w.state == WorkflowState::Prepared
    })
    .await;
    assert!(exit.groups_done.is_empty());
    assert_eq!(
        daemon
            .metric("mesolive_trading_state{state=\"halted\"}")
            .await,
        Some(1.0)
    );
    let requests = sim.requests().await;
    let after: Vec<&String> = requests[halted_at..].iter().map(|(_, m)| m).collect();
    assert!(
        after.iter().any(|m| *m == "GetIdempotencyRecord"),
        "the in-flight intent was settled by reading: {after:?}"
    );
    assert_eq!(
        sent_since(&sim, halted_at).await,
        Vec::<String>::new(),
        "nothing state-changing sent while halted"
    );
    let paused = workflows_active(&daemon).await;
    assert_eq!(paused, 3, "entry, exit and adjustment wait");

    let out = daemon.ctl(&["resume", "--reason", "fixed"]);
    assert!(
        ok(&out).contains("trading state active (was halted)"),
        "{out:?}"
    );
    let entry_done = finished(&daemon, FlowKind::Entry, OTHER_STRATEGY).await;
    assert_eq!(entry_done.state, WorkflowState::Done, "{entry_done:?}");
    let exit_done = workflow_where(&daemon, "the exit finished", |w| {
        w.kind == FlowKind::Exit && !w.state.is_active()
    })
    .await;
    assert_eq!(exit_done.state, WorkflowState::Done, "{exit_done:?}");
    let adjustment = workflow_where(&daemon, "the adjustment finished", |w| {
        w.kind == FlowKind::Adjustment && !w.state.is_active()
    })
    .await;
    assert_eq!(adjustment.state, WorkflowState::Cancelled, "{adjustment:?}");
    assert!(
        adjustment
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("signal went Off")),
        "{adjustment:?}"
    );
    let ledger = sim.get("/ledger").await;
    assert_eq!(ledger["second_effects"], 0, "{ledger}");
    let status = daemon.status();
    assert_eq!(status["trading_state"], "active");
    let actions = status["operator_actions"].as_array().expect("actions");
    assert_eq!(actions[0]["to_state"], "active");
    assert_eq!(actions[0]["reason"], "fixed");
    assert_eq!(actions[1]["to_state"], "halted");
    assert_eq!(actions[1]["source"], "ctl");
    assert!(
        daemon
            .log_text()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("trading state changed")),
        "every change logged at warn"
    );
    let _ = store.close().await;
}

async fn workflows_active(daemon: &Daemon) -> usize {
    super::workflows(daemon)
        .await
        .iter()
        .filter(|w| w.state.is_active())
        .count()
}

/// Reduce-only: an entry and an adjustment arriving are recorded cancelled with the state in
/// their reason; the exit goes through, and it is all that is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_only_sends_exits_only() {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(&sim, dir.path(), &paper_env());
    daemon.wait_ready(Duration::from_secs(20)).await;
    let position = open_position(&daemon, PAPER_STRATEGY).await;
    ok(&daemon.ctl(&["reduce-only", "--reason", "wind down"]));
    let switched_at = sim.requests().await.len();

    entry(&sim, OTHER_STRATEGY, "On").await;
    let refused = finished(&daemon, FlowKind::Entry, OTHER_STRATEGY).await;
    assert_eq!(refused.state, WorkflowState::Cancelled);
    assert!(
        refused
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("trading state reduce_only")),
        "{refused:?}"
    );
    signal(
        &sim,
        json!({"kind": "adjustment", "state": "On", "strategy_id": PAPER_STRATEGY,
               "position_id": position, "condition": "roll"}),
    )
    .await;
    let adjustment = finished(&daemon, FlowKind::Adjustment, PAPER_STRATEGY).await;
    assert_eq!(adjustment.state, WorkflowState::Cancelled);
    assert!(
        adjustment
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("adjust_in_reduce_only")),
        "{adjustment:?}"
    );
    signal(
        &sim,
        json!({"kind": "exit", "state": "On", "strategy_id": PAPER_STRATEGY, "position_id": position}),
    )
    .await;
    let exit = finished(&daemon, FlowKind::Exit, PAPER_STRATEGY).await;
    assert_eq!(exit.state, WorkflowState::Done, "{exit:?}");
    let sent = sent_since(&sim, switched_at).await;
    assert_eq!(
        sent.iter()
            .filter(|m| *m == "StartPreparePositionExit")
            .count(),
        1,
        "{sent:?}"
    );
    assert!(
        sent.iter()
            .all(|m| m == "StartPreparePositionExit" || m == "ApplyPaperFills"),
        "exits only: {sent:?}"
    );
    assert_eq!(sim.get("/ledger").await["second_effects"], 0);
}

/// The state is the store's: it survives SIGKILL, and `ctl` writes it to the database of a
/// stopped daemon (or of one never started: `automation.initial_state` is then not read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trading_state_survives_sigkill_and_is_set_with_the_daemon_stopped() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::new(&sim, dir.path(), &[]);
    let out = daemon.ctl(&["halt", "--reason", "before the first start"]);
    let text = ok(&out);
    assert!(text.contains("no daemon answers"), "{text}");
    assert!(text.contains("the daemon starts halted"), "{text}");
    let out = daemon.ctl(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(69),
        "status needs the daemon: {out:?}"
    );

    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    let status = daemon.status();
    assert_eq!(status["trading_state"], "halted", "{status}");
    assert_eq!(status["ready"], true);
    assert!(status["cursor"].is_i64(), "{status}");
    assert_eq!(
        daemon
            .metric("mesolive_trading_state{state=\"halted\"}")
            .await,
        Some(1.0)
    );

    ok(&daemon.ctl(&["reduce-only"]));
    daemon.kill();
    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(daemon.status()["trading_state"], "reduce_only");
    assert_eq!(
        daemon
            .metric("mesolive_trading_state{state=\"reduce_only\"}")
            .await,
        Some(1.0)
    );
    daemon.signal(libc::SIGTERM);
    let exit = daemon.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(exit.code(), Some(0));
    let text = ok(&daemon.ctl(&["resume"]));
    assert!(
        text.contains("trading state active (was reduce_only)"),
        "{text}"
    );
    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(daemon.status()["trading_state"], "active");
    let state = daemon.state_json();
    assert!(state.contains("\"trading_state\": \"active\""), "{state}");
    assert!(state.contains("before the first start"), "{state}");
}
