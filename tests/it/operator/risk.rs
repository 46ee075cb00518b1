//! Each risk limit at its boundary (N allowed, N+1 refused, the refusal recorded on the
//! workflow with the rule's name and counted), and the daily-loss switch fired by position
//! updates, kept across a restart, undone only by an operator and not fired again that day.

use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::WorkflowState;
use serde_json::json;
use testkit::wait_for;

use super::{PAPER, entry, finished, ok, open_position, quick_sim, sent_since};
use crate::support::daemon::{Daemon, Sim};

fn env(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![
        ("MESOLIVE__AUTOMATION__MODE", "paper"),
        ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "10"),
    ];
    env.extend_from_slice(extra);
    env
}

/// Waits for the `nth` (1-based) finished entry workflow of `strategy`.
async fn nth_entry(
    daemon: &Daemon,
    strategy: i64,
    nth: usize,
) -> mesolive_supervisor::store::WorkflowRecord {
    let what = format!("entry {nth} of {strategy} finished");
    testkit::wait_some(&what, Duration::from_secs(20), || async {
        let finished: Vec<_> = super::workflows(daemon)
            .await
            .into_iter()
            .filter(|w| {
                w.kind == FlowKind::Entry && w.strategy_id == strategy && !w.state.is_active()
            })
            .collect();
        finished.get(nth - 1).cloned()
    })
    .await
}

fn refused_by(workflow: &mesolive_supervisor::store::WorkflowRecord, key: &str) {
    assert_eq!(workflow.state, WorkflowState::Cancelled, "{workflow:?}");
    assert!(
        workflow
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with(key)),
        "refused by {key}: {workflow:?}"
    );
}

async fn refusals(daemon: &Daemon, rule: &str) -> Option<f64> {
    daemon
        .metric(&format!("mesolive_risk_refusals_total{{rule=\"{rule}\"}}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_entries_per_day_allows_n_and_refuses_the_next() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &env(&[("MESOLIVE__RISK__MAX_ENTRIES_PER_DAY", "2")]),
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    for nth in 1..=2 {
        entry(&sim, 101, "On").await;
        let done = nth_entry(&daemon, 101, nth).await;
        assert_eq!(done.state, WorkflowState::Done, "entry {nth}: {done:?}");
        entry(&sim, 101, "Off").await;
    }
    let before = sim.requests().await.len();
    entry(&sim, 101, "On").await;
    let third = nth_entry(&daemon, 101, 3).await;
    refused_by(
        &third,
        "risk.max_entries_per_day: 2 entries already started on PAPER-1",
    );
    assert_eq!(refusals(&daemon, "max_entries_per_day").await, Some(1.0));
    assert_eq!(sent_since(&sim, before).await, Vec::<String>::new());
    daemon
        .wait_log(
            &["risk limit: workflow refused", "max_entries_per_day"],
            Duration::from_secs(5),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_open_positions_total_counts_every_strategy_of_the_account() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &env(&[("MESOLIVE__RISK__MAX_OPEN_POSITIONS_TOTAL", "1")]),
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry(&sim, 101, "On").await;
    assert_eq!(
        finished(&daemon, FlowKind::Entry, 101).await.state,
        WorkflowState::Done
    );
    open_position(&daemon, 101).await;
    entry(&sim, 102, "On").await;
    let second = finished(&daemon, FlowKind::Entry, 102).await;
    refused_by(
        &second,
        "risk.max_open_positions_total: 1 positions open or being opened on PAPER-1 (limit 1)",
    );
    assert_eq!(
        refusals(&daemon, "max_open_positions_total").await,
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_orders_per_minute_allows_n_calls_and_refuses_the_next_workflow() {
    let sim = Sim::start(quick_sim(0)).await;
    let dir = testkit::temp_dir();
    // A paper entry is three calls: the prepare and one paper fill per leg group.
    let daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &env(&[("MESOLIVE__RISK__MAX_ORDERS_PER_MINUTE", "3")]),
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    entry(&sim, 101, "On").await;
    assert_eq!(
        finished(&daemon, FlowKind::Entry, 101).await.state,
        WorkflowState::Done
    );
    assert_eq!(sent_since(&sim, 0).await.len(), 3);
    entry(&sim, 102, "On").await;
    let second = finished(&daemon, FlowKind::Entry, 102).await;
    refused_by(
        &second,
        "risk.max_orders_per_minute: 3 state-changing calls on PAPER-1",
    );
    assert_eq!(
        sent_since(&sim, 0).await.len(),
        3,
        "the fourth call was not sent"
    );
    assert_eq!(refusals(&daemon, "max_orders_per_minute").await, Some(1.0));
}

async fn realized(sim: &Sim, position: i64, pnl: i64) {
    sim.inject(
        "OnPositionUpdate",
        json!({"PositionId": position, "StrategyId": 101, "BrokerAccountId": PAPER,
               "Status": "RealizedPnLChanged", "RealizedPnL": pnl}),
        json!({}),
    )
    .await;
}

async fn daily_pnl(daemon: &Daemon) -> Option<f64> {
    daemon
        .metric(&format!(
            "mesolive_risk_daily_realized_pnl{{account=\"{PAPER}\"}}"
        ))
        .await
}

/// The daily loss is read from position updates; reaching the limit switches the state to
/// `risk.on_daily_loss` with the figures in the reason; a restart keeps it; an operator's
/// resume is not undone, by the next checks nor by a restart, however much further the loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_loss_switch_fires_from_position_updates_once_per_day() {
    let sim = Sim::start(quick_sim(1)).await;
    let dir = testkit::temp_dir();
    let mut daemon = Daemon::spawn(
        &sim,
        dir.path(),
        &env(&[
            ("MESOLIVE__RISK__MAX_DAILY_LOSS", "500"),
            ("MESOLIVE__RISK__ON_DAILY_LOSS", "halted"),
        ]),
    );
    daemon.wait_ready(Duration::from_secs(20)).await;
    let position = open_position(&daemon, 101).await;
    realized(&sim, position, -499).await;
    wait_for("the day's PnL at -499", Duration::from_secs(10), || async {
        daily_pnl(&daemon).await == Some(-499.0)
    })
    .await;
    assert_eq!(
        daemon.status()["trading_state"],
        "active",
        "one below the limit"
    );
    realized(&sim, position, -500).await;
    wait_for("the switch to halted", Duration::from_secs(10), || async {
        daemon.status()["trading_state"] == "halted"
    })
    .await;
    assert_eq!(
        daemon
            .metric("mesolive_risk_switches_total{rule=\"max_daily_loss\"}")
            .await,
        Some(1.0)
    );
    let action = daemon.status()["operator_actions"][0].clone();
    assert_eq!(action["source"], "risk", "{action}");
    let reason = action["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("risk.max_daily_loss: realized PnL -500 on PAPER-1")
            && reason.contains("-500"),
        "{reason}"
    );

    daemon.kill();
    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    assert_eq!(
        daemon.status()["trading_state"],
        "halted",
        "kept across a restart"
    );
    ok(&daemon.ctl(&["resume", "--reason", "reviewed"]));
    realized(&sim, position, -800).await;
    wait_for(
        "the day's PnL at -800 checked",
        Duration::from_secs(10),
        || async { daily_pnl(&daemon).await == Some(-800.0) },
    )
    .await;
    assert_eq!(
        daemon.status()["trading_state"],
        "active",
        "not fired twice a day"
    );
    daemon.kill();
    daemon.start();
    daemon.wait_ready(Duration::from_secs(20)).await;
    wait_for(
        "the day's PnL checked after the restart",
        Duration::from_secs(10),
        || async { daily_pnl(&daemon).await == Some(-800.0) },
    )
    .await;
    assert_eq!(
        daemon.status()["trading_state"],
        "active",
        "a restart does not fire it again"
    );
}
