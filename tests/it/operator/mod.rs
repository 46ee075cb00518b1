//! Operator control end to end, the daemon as a process against the simulator: the trading
//! states with signals arriving (what the simulator's request log proves was sent), the state
//! surviving SIGKILL and set with the daemon stopped, the control socket refusing another
//! user, each risk limit at its boundary, and the live reload.

mod reload;
mod risk;
mod socket;
mod trading_state;

use std::process::Output;
use std::time::Duration;

use mesolive_api::FlowKind;
use mesolive_api::wire::methods;
use mesolive_sim::SimOptions;
use mesolive_supervisor::store::WorkflowRecord;
use serde_json::{Value, json};
use testkit::wait_some;

use crate::support::daemon::{Daemon, Sim};

const PAPER: &str = "PAPER-1";

/// A simulator with quick jobs and fills, and `positions` open positions (the first one is
/// strategy 101's on PAPER-1).
fn quick_sim(positions: usize) -> SimOptions {
    let mut options = SimOptions {
        positions,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options
}

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.expect("workflows");
    let _ = store.close().await;
    all
}

/// Waits for the workflow of `kind` and `strategy` that `pick` accepts, and returns it.
async fn workflow_where(
    daemon: &Daemon,
    what: &str,
    pick: impl Fn(&WorkflowRecord) -> bool,
) -> WorkflowRecord {
    let what = format!("{what} (log {})", daemon.log.display());
    wait_some(&what, Duration::from_secs(20), || async {
        workflows(daemon).await.into_iter().find(|w| pick(w))
    })
    .await
}

/// Waits for a finished workflow of `kind` for `strategy`.
async fn finished(daemon: &Daemon, kind: FlowKind, strategy: i64) -> WorkflowRecord {
    workflow_where(
        daemon,
        &format!("a finished {} workflow of {strategy}", kind.as_str()),
        |w| w.kind == kind && w.strategy_id == strategy && !w.state.is_active(),
    )
    .await
}

async fn signal(sim: &Sim, body: Value) {
    sim.post("/signals", body).await;
}

async fn entry(sim: &Sim, strategy: i64, state: &str) {
    signal(
        sim,
        json!({"kind": "entry", "state": state, "strategy_id": strategy, "account": PAPER}),
    )
    .await;
}

/// The state-changing methods among the simulator's requests from `from` on.
async fn sent_since(sim: &Sim, from: usize) -> Vec<String> {
    sim.requests()
        .await
        .into_iter()
        .skip(from)
        .filter(|(_, m)| methods::is_state_changing(m))
        .map(|(_, m)| m)
        .collect()
}

/// Asserts `ctl` succeeded; its standard output.
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "ctl failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The position open in the daemon's state for `strategy`.
async fn open_position(daemon: &Daemon, strategy: i64) -> i64 {
    let store = daemon.store().await;
    let id = wait_some(
        "the position open in the daemon's state",
        Duration::from_secs(10),
        || async {
            store
                .open_positions()
                .await
                .expect("positions")
                .iter()
                .find(|p| p.strategy_id == strategy && p.account == PAPER)
                .map(|p| p.position_id)
        },
    )
    .await;
    let _ = store.close().await;
    id
}
