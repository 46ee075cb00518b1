//! The invariants checked after every run, from the simulator's log and ledger versus the
//! daemon's database, and the facts the report adds up.

use std::collections::BTreeMap;

use mesolive_api::FlowKind;
use mesolive_supervisor::store::WorkflowState;

use crate::support::daemon::{Daemon, Sim, violations};

/// What a run produced, as the summary adds it up.
#[derive(Debug, Default, Clone)]
pub(crate) struct Facts {
    /// Events the simulator logged (= its latest EventSeqId).
    pub events: i64,
    /// Faults that fired, by kind, as the simulator counted them.
    pub faults_fired: BTreeMap<String, u64>,
    /// Intents by operation.
    pub intents: BTreeMap<String, i64>,
    /// Workflows by final state.
    pub workflows: BTreeMap<String, i64>,
    /// Effects in the simulator's ledger (orders and paper fills).
    pub effects: u64,
    /// Effects that repeated an intent.
    pub second_effects: u64,
}

/// Checks every invariant; returns the facts and the violations (empty when all hold).
///
/// * exactly once: every logged EventId in the dedupe set, effects per callback equal events
///   logged per callback, no EventSeqId twice, cursor = the latest EventSeqId, nothing valid
///   quarantined (shared with the chaos and failover tests: `support::daemon::violations`), read
///   from the daemon's database on either backend;
/// * zero second effects in the ledger;
/// * no hole in the event history met (the simulator keeps its whole history);
/// * a workflow fails only because a prepare job was failed on purpose (never more of them
///   than the simulator failed), or because it is an exit whose position closed before its
///   prepare (another exit of the same position, signalled while the first ran, got there
///   first: the server refuses the prepare).
pub(crate) async fn check(sim: &Sim, daemon: &Daemon) -> (Facts, Vec<String>) {
    let store_facts = daemon.facts().await;
    let mut violations = violations(sim, &store_facts).await;
    let stats = sim.get("/stats").await;
    let ledger = sim.get("/ledger").await;
    let mut facts = Facts {
        events: sim.latest_seq().await,
        effects: ledger["total_effects"].as_u64().unwrap_or(0),
        second_effects: ledger["second_effects"].as_u64().unwrap_or(u64::MAX),
        ..Facts::default()
    };
    if let Some(fired) = stats["faults_injected"].as_object() {
        for (kind, n) in fired {
            facts
                .faults_fired
                .insert(kind.clone(), n.as_u64().unwrap_or(0));
        }
    }
    if facts.second_effects != 0 {
        violations.push(format!("second effects in the ledger: {ledger}"));
    }

    let store = daemon.store().await;
    let workflows = store.all_workflows().await.expect("workflows");
    let gaps = store.history_gaps().await.expect("history gaps");
    let _ = store.close().await;
    if !gaps.is_empty() {
        violations.push(format!(
            "history gaps met on a server with its whole history: {gaps:?}"
        ));
    }
    let mut failed_by_prepare = 0;
    for workflow in &workflows {
        *facts
            .workflows
            .entry(workflow.state.as_str().to_owned())
            .or_default() += 1;
        if workflow.state == WorkflowState::Failed {
            let full = workflow.reason.as_deref().unwrap_or_default();
            // What failed, without the retry note (`; attempt N at …`, `; not retried: …`).
            let reason = full.split("; ").next().unwrap_or_default();
            if reason.starts_with("prepare job") {
                failed_by_prepare += 1;
            } else if !(workflow.kind == FlowKind::Exit && reason.ends_with("is closed")) {
                violations.push(format!(
                    "workflow {} ({}) failed without an injected failure: {full}",
                    workflow.id,
                    workflow.kind.as_str()
                ));
            }
        }
    }
    let failed_prepares = facts.faults_fired.get("fail_prepare").copied().unwrap_or(0);
    if failed_by_prepare > failed_prepares {
        violations.push(format!(
            "{failed_by_prepare} workflows failed in their prepare job, {failed_prepares} prepares were failed on purpose"
        ));
    }
    facts.intents = store_facts.intents;
    (facts, violations)
}
