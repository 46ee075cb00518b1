//! The core scenario every wire form is played against: the daemon as a process and a
//! simulator playing one wire profile.
//!
//! 1. A first start with the default `events.first_run = latest` while an entry signal is On:
//!    startup in runbook order, and the signal arrives only as an on-connect push (API §4.2);
//! 2. that paper entry (one of its answers lost and settled), its exit; a live entry and exit
//!    (orders carrying decimals);
//! 3. a reconnect; SIGTERM; events logged while the daemon is down; a restart that replays
//!    them; SIGTERM;
//! 4. the exactly-once invariants from the first cursor on, and no second effect.
//!
//! A profile the daemon cannot work under must instead be refused loudly: one line naming the
//! dimension and the form, exit 76, nothing acted on. The simulator options other work adds
//! (on-connect push forms, history retention) reach this scenario through the profile: steps
//! 1 and 3 are where a repeated push and a history that no longer reaches the cursor show.

use std::time::{Duration, Instant};

use mesolive_api::FlowKind;
use mesolive_sim::{SimOptions, WireProfile};
use mesolive_supervisor::store::{PositionState, WorkflowRecord, WorkflowState};
use serde_json::{Value, json};

use crate::support::daemon::{Daemon, Sim, exactly_once_violations_after};
use testkit::eventually;

/// The forms the daemon refuses (exit 76, one line naming the form, nothing acted on); it meets
/// every other form the simulator plays (`docs/inferred.md` says which and why).
pub(crate) const REFUSED: &[(&str, &str)] = &[
    ("status_code_spelling", "numeric"),
    ("enum_encoding", "numeric"),
    ("flags_encoding", "numeric_only"),
    ("history_item_payload", "numeric_type"),
    ("history_item_payload", "untyped"),
    ("history_args", "other_name"),
];

/// Forms the daemon meets in the core scenario but that a fault campaign must not draw: a
/// server that throws for a key it never saw, or says so only in an error code that another
/// form of the profile may drop (`envelope_error_fields=message_only` or `error_as_string`),
/// cannot tell the daemon that a call killed before it left was never received, so such an
/// intent waits (logged at every attempt) and is never resent; the campaign's SIGKILLs make
/// that certain, and it counts the wait as a stuck workflow.
const UNSETTLEABLE: &[(&str, &str)] = &[
    ("idempotency_not_found", "hub_error"),
    ("idempotency_not_found", "other_status"),
];

/// Whether the daemon refuses `dimension=form`.
pub(crate) fn refused(dimension: &str, form: &str) -> bool {
    REFUSED.contains(&(dimension, form))
}

/// The spec of a `random:SEED` profile drawn from the forms the daemon meets; `campaign` also
/// keeps out the forms a fault campaign cannot survive by design.
pub(crate) fn random_profile(seed: u64, campaign: bool) -> String {
    let extra = if campaign { UNSETTLEABLE } else { &[] };
    let exclusions: String = REFUSED
        .iter()
        .chain(extra)
        .map(|(dimension, form)| format!(",!{dimension}={form}"))
        .collect();
    format!("random:{seed}{exclusions}")
}

/// The forms of `spec` that are not today's, as `dimension=form` (for reports).
pub(crate) fn changed_forms(spec: &str) -> Vec<String> {
    let Ok(profile) = WireProfile::parse(spec) else {
        return vec![format!("unparsable: {spec}")];
    };
    let today = mesolive_sim::Forms::default().pairs();
    profile
        .forms()
        .pairs()
        .into_iter()
        .zip(today)
        .filter(|(mine, today)| mine != today)
        .map(|((dimension, form), _)| format!("{dimension}={form}"))
        .collect()
}

const PAPER_STRATEGY: i64 = 101;
const LIVE_STRATEGY: i64 = 103;
/// Events logged before the daemon first starts (it starts after them).
const HISTORY: u64 = 300;
/// Events logged while the daemon is down: the restart replays them.
const MISSED: u64 = 100;
/// How long one step of the scenario may take.
const STEP: Duration = Duration::from_secs(20);

/// What one profile did to the core scenario.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The profile spec.
    pub profile: String,
    /// What went wrong (empty: the scenario passed, or the refusal was as loud as required).
    pub violations: Vec<String>,
    /// Whether the daemon refused the profile (exited naming an unsupported form).
    pub refused: Option<String>,
    pub elapsed: Duration,
}

fn sim_options(profile: &str) -> SimOptions {
    let mut options = SimOptions {
        positions: 1,
        wire: WireProfile::parse(profile).unwrap_or_else(|err| panic!("profile {profile}: {err}")),
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(30);
    options.timing.fill_delay = Duration::from_millis(30);
    options.timing.stream_interval = Duration::from_millis(100);
    options
}

fn daemon_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MESOLIVE__AUTOMATION__MODE", "live"),
        ("MESOLIVE__AUTOMATION__ALLOW_STRATEGIES", "101,103"),
        ("MESOLIVE__AUTOMATION__ORDER_TYPE", "limit_mid"),
        ("MESOLIVE__AUTOMATION__MAX_OPEN_POSITIONS", "5"),
    ]
}

async fn workflows(daemon: &Daemon) -> Vec<WorkflowRecord> {
    let store = daemon.store().await;
    let all = store.all_workflows().await.unwrap_or_default();
    let _ = store.close().await;
    all
}

/// The finished workflow of `kind` on `strategy` that is not among `seen`.
async fn finished(
    daemon: &Daemon,
    kind: FlowKind,
    strategy: i64,
    seen: &mut Vec<i64>,
) -> Result<WorkflowRecord, String> {
    let deadline = Instant::now() + STEP;
    loop {
        if let Some(done) = workflows(daemon).await.into_iter().find(|w| {
            w.kind == kind
                && w.strategy_id == strategy
                && !w.state.is_active()
                && !seen.contains(&w.id)
        }) {
            seen.push(done.id);
            return Ok(done);
        }
        if Instant::now() >= deadline {
            let all: Vec<String> = workflows(daemon)
                .await
                .iter()
                .map(|w| {
                    format!(
                        "{} {} {} {:?}",
                        w.kind.as_str(),
                        w.strategy_id,
                        w.state.as_str(),
                        w.reason
                    )
                })
                .collect();
            return Err(format!(
                "no finished {} workflow of strategy {strategy} in {STEP:?}: {all:?}",
                kind.as_str()
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The open position of `strategy` in the daemon's state.
async fn open_position(daemon: &Daemon, strategy: i64, not: &[i64]) -> Result<i64, String> {
    let deadline = Instant::now() + STEP;
    loop {
        let store = daemon.store().await;
        let open = store.open_positions().await.unwrap_or_default();
        let _ = store.close().await;
        if let Some(p) = open
            .iter()
            .find(|p| p.strategy_id == strategy && !not.contains(&p.position_id))
        {
            return Ok(p.position_id);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no open position of strategy {strategy} in the daemon's state"
            ));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn closed(daemon: &Daemon, position: i64) -> bool {
    let store = daemon.store().await;
    let state = store
        .position(position)
        .await
        .ok()
        .flatten()
        .map(|p| p.state);
    let _ = store.close().await;
    state == Some(PositionState::Closed)
}

/// The first log line of a daemon that refused the server's wire forms (`wire form not
/// supported`), if it did.
fn refusal(daemon: &Daemon) -> Option<String> {
    daemon
        .log_text()
        .lines()
        .find(|line| line.contains("wire form not supported"))
        .map(str::to_owned)
}

/// Runs the core scenario against a simulator playing `profile`.
pub(crate) async fn core_scenario(profile: &str) -> Outcome {
    core_scenario_with(profile, &[]).await
}

/// [`core_scenario`] with settings of the daemon overridden (`MESOLIVE__…` variables).
pub(crate) async fn core_scenario_with(profile: &str, settings: &[(&str, &str)]) -> Outcome {
    scenario(profile, settings, json!({})).await
}

/// [`core_scenario`] against a simulator with `faults` set from the start (the forms the
/// simulator plays as faults rather than profile dimensions: `connect_push`).
pub(crate) async fn core_scenario_with_faults(profile: &str, faults: Value) -> Outcome {
    scenario(profile, &[], faults).await
}

async fn scenario(profile: &str, settings: &[(&str, &str)], faults: Value) -> Outcome {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("temp dir");
    let sim = Sim::start(sim_options(profile)).await;
    sim.faults(faults).await;
    sim.emit(HISTORY).await;
    // Active when the daemon first connects: pushed on connect, below its first cursor.
    sim.post(
        "/signals",
        json!({"kind": "entry", "state": "On", "strategy_id": PAPER_STRATEGY, "account": "PAPER-1"}),
    )
    .await;
    sim.faults(
        json!({"lose_completion": {"method": "ApplyPaperFills", "count": 1, "mode": "drop"}}),
    )
    .await;
    let first_cursor = sim.latest_seq().await;
    let mut env = daemon_env();
    env.extend_from_slice(settings);
    let mut daemon = Daemon::spawn(&sim, dir.path(), &env);
    let mut violations = Vec::new();
    let refused = run(&sim, &mut daemon, &mut violations).await;
    if refused.is_none() && violations.is_empty() {
        violations.extend(exactly_once_violations_after(&sim, &daemon.db, first_cursor).await);
        let ledger = sim.get("/ledger").await;
        if ledger["second_effects"] != 0 {
            violations.push(format!("second effects: {ledger}"));
        }
    }
    if daemon.log_text().contains("panicked") {
        violations.push("the daemon log shows a panic".into());
    }
    if !violations.is_empty() {
        let log = daemon.log_text();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        violations.push(format!(
            "daemon log (last lines, newest first):\n    {}",
            tail.join("\n    ")
        ));
    }
    drop(daemon);
    sim.running.shutdown().await;
    Outcome {
        profile: profile.to_owned(),
        violations,
        refused,
        elapsed: started.elapsed(),
    }
}

/// The scenario's steps; `Some(line)` when the daemon refused the profile (then only that
/// refusal is checked: one line, exit status, nothing acted on).
async fn run(sim: &Sim, daemon: &mut Daemon, violations: &mut Vec<String>) -> Option<String> {
    let deadline = Instant::now() + STEP;
    let mut ready = false;
    while daemon.is_running() && Instant::now() < deadline {
        if daemon.readyz().await == Some(200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !daemon.is_running() {
        return refused_loudly(sim, daemon, violations).await;
    }
    if !ready {
        violations.push(format!("not ready within {STEP:?}"));
        return None;
    }
    if let Err(v) = steps(sim, daemon).await {
        violations.push(v);
        if let Some(line) = refusal(daemon) {
            violations.push(format!("refused only after acting: {line}"));
        }
        return None;
    }
    if let Err(v) = restart(sim, daemon).await {
        violations.push(v);
    }
    None
}

/// SIGTERM, events logged while the daemon is down, a start that replays them, SIGTERM.
async fn restart(sim: &Sim, daemon: &mut Daemon) -> Result<(), String> {
    stop(daemon).await?;
    sim.emit(MISSED).await;
    daemon.start();
    let latest = sim.latest_seq().await;
    let replayed = eventually(STEP, || async {
        daemon.readyz().await == Some(200) && daemon.cursor().await == Some(latest)
    })
    .await;
    if !replayed {
        return Err(format!(
            "restart: readyz {:?}, cursor {:?}, latest {latest}",
            daemon.readyz().await,
            daemon.cursor().await
        ));
    }
    stop(daemon).await
}

async fn stop(daemon: &mut Daemon) -> Result<(), String> {
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(Duration::from_secs(30)).await;
    if status.success() {
        Ok(())
    } else {
        Err(format!("SIGTERM stopped the daemon with {status}"))
    }
}

/// A daemon that exited on its own must have said why in one line naming a dimension and a
/// form, with exit status 76, before acting on anything.
async fn refused_loudly(
    sim: &Sim,
    daemon: &mut Daemon,
    violations: &mut Vec<String>,
) -> Option<String> {
    let status = daemon.wait_exit(Duration::from_secs(5)).await;
    let Some(line) = refusal(daemon) else {
        violations.push(format!(
            "the daemon exited ({status}) without naming a wire form"
        ));
        return None;
    };
    if status.code() != Some(76) {
        violations.push(format!("refused with {status}, not 76: {line}"));
    }
    let ledger = sim.get("/ledger").await;
    if ledger["total_effects"] != 0 {
        violations.push(format!("effects before the refusal: {ledger}"));
    }
    Some(line)
}

async fn steps(sim: &Sim, daemon: &Daemon) -> Result<(), String> {
    runbook_order(sim).await?;
    let mut seen = Vec::new();
    let mut positions = Vec::new();
    for (strategy, account) in [(PAPER_STRATEGY, "PAPER-1"), (LIVE_STRATEGY, "LIVE-1")] {
        if strategy != PAPER_STRATEGY {
            // The paper signal was pushed on connect; this one arrives live.
            sim.post(
                "/signals",
                json!({"kind": "entry", "state": "On", "strategy_id": strategy, "account": account}),
            )
            .await;
        }
        let entry = finished(daemon, FlowKind::Entry, strategy, &mut seen).await?;
        if entry.state != WorkflowState::Done {
            return Err(format!(
                "{account} entry: {} ({:?})",
                entry.state.as_str(),
                entry.reason
            ));
        }
        let position = open_position(daemon, strategy, &positions).await?;
        positions.push(position);
        sim.post(
            "/signals",
            json!({"kind": "exit", "state": "On", "strategy_id": strategy, "position_id": position}),
        )
        .await;
        let exit = finished(daemon, FlowKind::Exit, strategy, &mut seen).await?;
        if exit.state != WorkflowState::Done {
            return Err(format!(
                "{account} exit: {} ({:?})",
                exit.state.as_str(),
                exit.reason
            ));
        }
        if !eventually(STEP, || closed(daemon, position)).await {
            return Err(format!(
                "position {position} not closed in the daemon's state"
            ));
        }
    }
    let stats = sim.get("/stats").await;
    if stats["faults_injected"]["lose_completion"] != 1 {
        return Err(format!("the lost answer was not lost: {stats}"));
    }
    let calls = sim.requests().await;
    if !calls.iter().any(|(_, m)| m == "GetIdempotencyRecord") {
        return Err("the lost answer was not settled through GetIdempotencyRecord".into());
    }
    sim.drop_connections().await;
    sim.emit(50).await;
    let latest = sim.latest_seq().await;
    let recovered = eventually(STEP, || async {
        daemon.readyz().await == Some(200) && daemon.cursor().await == Some(latest)
    })
    .await;
    if recovered {
        Ok(())
    } else {
        Err(format!(
            "after a reconnect: readyz {:?}, cursor {:?}, latest {latest}",
            daemon.readyz().await,
            daemon.cursor().await
        ))
    }
}

/// Control (agents, accounts, strategies) before Data before Event; replay before subscribe.
async fn runbook_order(sim: &Sim) -> Result<(), String> {
    let calls = sim.requests().await;
    let first = |hub: &str, method: Option<&str>| {
        calls
            .iter()
            .position(|(h, m)| h == hub && method.is_none_or(|method| m == method))
    };
    let order = [
        first("control", Some("ListAgents")),
        first("control", Some("ListAccounts")),
        first("control", Some("ListStrategies")),
        first("data", None),
        first("event", Some("GetEventsSince")),
        first("event", Some("SubscribeToStrategies")),
    ];
    let in_order = order.iter().all(Option::is_some) && order.windows(2).all(|w| w[0] < w[1]);
    if in_order {
        Ok(())
    } else {
        Err(format!("not in runbook order: {calls:?}"))
    }
}
