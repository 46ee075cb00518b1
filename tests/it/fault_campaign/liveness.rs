//! The liveness invariants, checked after the quiet phase of every run (faults cleared, the
//! simulator healthy, the daemon left alone until quiet): the daemon did its job, or its store
//! says why it may not — a recorded reason, never silence. The safety invariants
//! (`invariants.rs`) say it did no harm; a daemon that does nothing passes those.
//!
//! 1. ready and caught up (cursor = the simulator's latest EventSeqId) within
//!    [`READY_WITHIN`] of the faults being cleared;
//! 2. every exit (adjustment) signal still On for a position the simulator has open closed
//!    (adjusted) it, or the store's last word on that signal instance is a reason why it may
//!    not: the mode, the allow list, the server's gate, a retry switch or limit;
//! 3. every entry signal still On was acted on: its instance's latest workflow is final with
//!    a reason (done, or why not: limits, mode, allow list, a failed try that entries do not
//!    repeat);
//! 4. no workflow is active past its deadline, no prepare job is in flight past
//!    `automation.job_timeout`, no intent is in flight;
//! 5. the monitored positions are the simulator's open positions, and none is stale.

use std::collections::BTreeSet;
use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::{
    SignalRecord, SignalState, Timestamp, WorkflowRecord, WorkflowState,
};
use serde_json::Value;
use testkit::eventually;

use crate::support::daemon::{Daemon, Sim};

/// The campaign's `supervisor.backoff_max` (see `support::daemon`).
const BACKOFF_MAX: Duration = Duration::from_millis(400);
/// How long a gap no later event reveals may stay unseen: the pump reads the latest
/// EventSeqId this often.
const GAP_PROBE: Duration = Duration::from_secs(15);
/// Ready and caught up within this of the faults being cleared: a reconnect after the longest
/// backoff, a gap found by the probe, and a few seconds to replay.
pub(crate) const READY_WITHIN: Duration =
    Duration::from_secs(BACKOFF_MAX.as_secs() + GAP_PROBE.as_secs() + 5);
/// How long the monitors may take to match the simulator's open positions once quiet.
const MONITORS_WITHIN: Duration = Duration::from_secs(15);
/// The campaign's `automation.job_timeout`.
pub(crate) const JOB_TIMEOUT: Duration = Duration::from_secs(20);

/// Reasons a store may give for not acting on a signal: why it *may not* (the mode, the allow
/// list, the server's trading state, a retry limit), as opposed to what went wrong — a failure
/// is not a reason to leave risk on, and neither is `automation.exit_retry = false` (the
/// behaviour before failed exits were retried, which this invariant exists to catch).
const MAY_NOT: [&str; 8] = [
    "observe mode",
    "automation.allow_strategies",
    "paper mode",
    "account unknown",
    "gate (EntryAllowed/AdjustmentAllowed) is closed",
    "automation.adjustment_operation is empty",
    "automation.exit_retry_max",
    "automation.max_open_positions",
];

/// What the liveness phase found, as the summary adds it up.
#[derive(Debug, Default, Clone)]
pub(crate) struct Liveness {
    /// Seconds from the faults being cleared to ready and caught up.
    pub ready_secs: f64,
    /// Exit and adjustment signals On for an open position at the end of the run.
    pub exits_on: u64,
    /// … of which the store gave a reason why it may not act.
    pub exits_with_reason: u64,
    /// Those reasons, as the store's last word on each.
    pub reasons: Vec<String>,
    /// Exit workflows done over the run (positions closed by the daemon).
    pub exits_done: u64,
    /// Entry signals On at the end of the run.
    pub entries_on: u64,
    /// … of which the store's last word is `done`.
    pub entries_done: u64,
    /// Attempts after the first (retries) over the run.
    pub retries: u64,
    /// Open positions in the simulator (= monitored, when invariant 5 holds).
    pub open_positions: u64,
}

/// The store's last word on a workflow, for a violation line.
fn last_word(workflow: &WorkflowRecord) -> String {
    format!(
        "workflow {} attempt {} {}: {}",
        workflow.id,
        workflow.attempt,
        workflow.state.as_str(),
        workflow.reason.as_deref().unwrap_or("(no reason)")
    )
}

/// Checks invariants 2–5 (1 is measured by the caller's settle); returns what was found and
/// the violations, each naming the invariant and the signal, position or workflow.
pub(crate) async fn check(
    sim: &Sim,
    daemon: &Daemon,
    ready: Option<Duration>,
) -> (Liveness, Vec<String>) {
    let mut found = Liveness::default();
    let mut violations = Vec::new();
    match ready {
        Some(took) if took <= READY_WITHIN => found.ready_secs = took.as_secs_f64(),
        Some(took) => {
            found.ready_secs = took.as_secs_f64();
            violations.push(format!(
                "liveness (1): ready and caught up {:.1} s after the faults were cleared (bound {READY_WITHIN:?})",
                took.as_secs_f64()
            ));
        }
        None => violations
            .push("liveness (1): never ready and caught up after the faults were cleared".into()),
    }

    let world = sim.get("/world").await;
    let open: BTreeSet<i64> = ids(&world["open_positions"], "id");
    found.open_positions = open.len() as u64;
    let store = daemon.store().await;
    let signals = store.signals().await.expect("signals");
    let workflows = store.all_workflows().await.expect("workflows");
    found.retries = workflows.iter().filter(|w| w.attempt > 1).count() as u64;
    found.exits_done = workflows
        .iter()
        .filter(|w| w.kind == FlowKind::Exit && w.state == WorkflowState::Done)
        .count() as u64;
    // The latest attempt at the instance of the store's On signal that `matches`.
    let last_attempt = |matches: &dyn Fn(&SignalRecord) -> bool| {
        let signal = signals
            .iter()
            .find(|s| s.state == SignalState::On && matches(s))?;
        Some(
            workflows
                .iter()
                .filter(|w| {
                    w.signal_key == signal.signal_key && w.signal_instance == signal.instance
                })
                .max_by_key(|w| w.attempt)
                .cloned(),
        )
    };

    for active in world["active_signals"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let about = &active["about"];
        match active["kind"].as_str().unwrap_or_default() {
            kind @ ("exit" | "adjustment") => {
                let position = about["position_id"].as_i64().unwrap_or_default();
                if !open.contains(&position) {
                    continue;
                }
                found.exits_on += 1;
                let flow = if kind == "exit" {
                    FlowKind::Exit
                } else {
                    FlowKind::Adjustment
                };
                let what = format!("{kind} signal On for open position {position}");
                let Some(workflow) =
                    last_attempt(&|s| s.kind == flow && s.position_id == Some(position))
                else {
                    violations.push(format!(
                        "liveness (2): {what}: the store has no such signal On"
                    ));
                    continue;
                };
                match workflow {
                    None => violations.push(format!(
                        "liveness (2): {what}: no workflow for the signal instance (silence)"
                    )),
                    Some(w) if w.state.is_active() => violations.push(format!(
                        "liveness (2): {what}: still active after the quiet phase: {}",
                        last_word(&w)
                    )),
                    Some(w) if w.retry_at.is_some() => violations.push(format!(
                        "liveness (2): {what}: an attempt planned but never made: {}",
                        last_word(&w)
                    )),
                    Some(w) if w.state == WorkflowState::Done && flow == FlowKind::Adjustment => {}
                    Some(w) if w.state == WorkflowState::Done => violations.push(format!(
                        "liveness (2): {what}: done, yet the position is open: {}",
                        last_word(&w)
                    )),
                    Some(w) => {
                        let reason = w.reason.as_deref().unwrap_or_default();
                        if MAY_NOT.iter().any(|why| reason.contains(why)) {
                            found.exits_with_reason += 1;
                            found.reasons.push(format!("{what}: {}", last_word(&w)));
                        } else {
                            violations.push(format!(
                                "liveness (2): {what}: not closed and no reason why it may not be: {}",
                                last_word(&w)
                            ));
                        }
                    }
                }
            }
            "entry" => {
                found.entries_on += 1;
                let strategy = about["strategy_id"].as_i64().unwrap_or_default();
                let account = about["account"].as_str().unwrap_or_default().to_owned();
                let what = format!("entry signal On for strategy {strategy} on {account}");
                let Some(workflow) = last_attempt(&|s| {
                    s.kind == FlowKind::Entry
                        && s.strategy_id == strategy
                        && s.account.as_deref() == Some(account.as_str())
                }) else {
                    violations.push(format!(
                        "liveness (3): {what}: the store has no such signal On"
                    ));
                    continue;
                };
                match workflow {
                    None => violations.push(format!(
                        "liveness (3): {what}: no workflow for the signal instance (silence)"
                    )),
                    Some(w) if w.state.is_active() || w.retry_at.is_some() => {
                        violations.push(format!(
                            "liveness (3): {what}: not settled after the quiet phase: {}",
                            last_word(&w)
                        ));
                    }
                    Some(w) if w.state == WorkflowState::Done => found.entries_done += 1,
                    Some(w) if w.reason.as_deref().unwrap_or_default().is_empty() => {
                        violations.push(format!(
                            "liveness (3): {what}: ended without a reason: {}",
                            last_word(&w)
                        ));
                    }
                    Some(_) => {}
                }
            }
            _ => {}
        }
    }

    let now = Timestamp::now();
    for workflow in store.active_workflows().await.unwrap_or_default() {
        if workflow.deadline.is_none_or(|at| at < now) {
            violations.push(format!(
                "liveness (4): active past its deadline ({:?}): {}",
                workflow.deadline.map(|d| d.to_string()),
                last_word(&workflow)
            ));
        }
    }
    for job in store.prepare_jobs_in_flight().await.unwrap_or_default() {
        if job.created_at < now.minus(JOB_TIMEOUT) {
            violations.push(format!(
                "liveness (4): prepare job {} ({}) still {} past automation.job_timeout, since {}",
                job.job_id,
                job.kind.as_str(),
                job.status.as_str(),
                job.created_at
            ));
        }
    }
    for intent in store.intents_in_flight().await.unwrap_or_default() {
        violations.push(format!(
            "liveness (4): intent {} ({}) still {} since {}",
            intent.key, intent.operation, intent.state, intent.created_at
        ));
    }
    let _ = store.close().await;

    let monitored_matches = eventually(MONITORS_WITHIN, || async {
        monitored(daemon).await == open
            && daemon.metric("mesolive_positions_stale").await == Some(0.0)
    })
    .await;
    if !monitored_matches {
        let monitored = monitored(daemon).await;
        violations.push(format!(
            "liveness (5): monitored positions {:?} (stale {:?}) are not the simulator's open positions {:?}: missing {:?}, extra {:?}",
            monitored,
            daemon.metric("mesolive_positions_stale").await,
            open,
            open.difference(&monitored).collect::<Vec<_>>(),
            monitored.difference(&open).collect::<Vec<_>>()
        ));
    }
    (found, violations)
}

async fn monitored(daemon: &Daemon) -> BTreeSet<i64> {
    let store = daemon.store().await;
    let monitored = store.monitored_positions().await.unwrap_or_default();
    let _ = store.close().await;
    monitored.iter().map(|p| p.position_id).collect()
}

fn ids(list: &Value, field: &str) -> BTreeSet<i64> {
    list.as_array()
        .map(|items| items.iter().filter_map(|i| i[field].as_i64()).collect())
        .unwrap_or_default()
}
