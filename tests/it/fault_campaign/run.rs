//! One run: a simulator, the daemon as a process (or, in failover mode, two daemons on one
//! PostgreSQL), a schedule carried out against them, then the quiet phase (faults cleared, the
//! daemons left alone until quiet), the safety invariants and the liveness invariants.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use mesolive_sim::{SimOptions, WireProfile};
use serde_json::{Value, json};

use testkit::{TempDir, eventually};

use super::invariants::{self, Facts};
use super::liveness::{self, Liveness};
use super::schedule::{Action, Mode, Schedule};
use crate::failover::group::Group;
use crate::support::daemon::{Daemon, Sim};
use crate::support::pg::Cluster;

/// How long the daemon may take to be ready and caught up once the faults are cleared.
const CATCH_UP: Duration = Duration::from_secs(90);
/// How long, after catching up, it may take to become quiet; a workflow still active then is
/// stuck.
const SETTLE: Duration = Duration::from_secs(60);
/// How long everything must stay still to count as quiet: well over the workflow runner's 1 s
/// tick, so a signal applied just before has visibly turned into a workflow (or not).
const QUIET: Duration = Duration::from_secs(3);
/// How long the daemon may take to record a position opened server-side: in failover mode the
/// leader may be frozen past its lease or killed just before, and the standby takes over first.
const SEEN_WITHIN: Duration = Duration::from_secs(45);
/// How long a SIGTERM may take to stop the daemon (its shutdown grace is 5 s in tests).
const STOP_BUDGET: Duration = Duration::from_secs(30);
/// How long two daemons may both answer `/readyz` 200: a leader resumed after a pause past its
/// lease reports ready until its lease keeper runs (its send gate is closed meanwhile).
const BOTH_READY_WITHIN: Duration = Duration::from_secs(2);

/// What one run did and found.
#[derive(Debug, Default)]
pub(crate) struct RunReport {
    pub seed: u64,
    /// The wire profile the simulator played.
    pub wire: String,
    pub elapsed: Duration,
    /// Actions carried out, by kind.
    pub actions: BTreeMap<&'static str, u64>,
    /// What the simulator and the daemon's database say afterwards.
    pub facts: Facts,
    /// What the liveness phase found.
    pub liveness: Liveness,
    /// Safety violations (the daemon did harm or lost something).
    pub violations: Vec<String>,
    /// Liveness violations (the daemon did not do its job and did not say why).
    pub liveness_violations: Vec<String>,
    /// The run's directory (database, daemon log), kept when there are violations.
    pub kept: Option<std::path::PathBuf>,
}

/// The simulator of a run: three open positions, quick jobs and fills.
pub(crate) fn sim_options(seed: u64) -> SimOptions {
    let mut options = SimOptions {
        seed,
        positions: 3,
        ..SimOptions::default()
    };
    options.timing.prepare_delay = Duration::from_millis(50);
    options.timing.fill_delay = Duration::from_millis(50);
    options.timing.stream_interval = Duration::from_millis(200);
    options
}

struct Runner {
    sim: Sim,
    /// One daemon, or the failover pair sharing `cluster`.
    daemons: Vec<Daemon>,
    cluster: Option<Cluster>,
    dirs: Vec<TempDir>,
    /// The daemon seen leading last (failover mode).
    leader: Option<usize>,
    /// Positions the campaign opened through the admin API (closed by churn, never exited).
    churn: Vec<i64>,
    outage_until: Instant,
    report: RunReport,
}

/// Carries out `schedule` with the daemon's environment `extra` added, quiesces, checks the
/// invariants.
pub(crate) async fn run(schedule: Schedule, extra: &[(&'static str, &'static str)]) -> RunReport {
    let started = Instant::now();
    let mut options = sim_options(schedule.seed);
    options.wire = WireProfile::parse(&schedule.wire)
        .unwrap_or_else(|err| panic!("wire profile {}: {err}", schedule.wire));
    let env = schedule.variant.env();
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.extend_from_slice(extra);
    let (sim, daemons, cluster, dirs) = match schedule.mode {
        Mode::Single => {
            let dir = testkit::temp_dir();
            let sim = Sim::start(options).await;
            let daemon = Daemon::spawn(&sim, dir.path(), &env);
            daemon.wait_ready(Duration::from_secs(30)).await;
            (sim, vec![daemon], None, vec![dir])
        }
        Mode::Failover => {
            let group = Group::start_on(options, &env, None).await;
            group.leader(Duration::from_secs(30)).await;
            let Group {
                sim,
                cluster,
                daemons,
                dirs,
                ..
            } = group;
            (sim, daemons, Some(cluster), dirs)
        }
    };
    let mut runner = Runner {
        sim,
        daemons,
        cluster,
        dirs,
        leader: None,
        churn: Vec::new(),
        outage_until: Instant::now(),
        report: RunReport {
            seed: schedule.seed,
            wire: schedule.wire.clone(),
            ..RunReport::default()
        },
    };
    let origin = tokio::time::Instant::now();
    for step in &schedule.steps {
        tokio::time::sleep_until(origin + step.at).await;
        runner.keep_running();
        runner.apply(&step.action).await;
        *runner.report.actions.entry(step.action.kind()).or_default() += 1;
        runner.observe_leadership().await;
    }
    let ready = runner.quiesce().await;
    let leader = &runner.daemons[runner.leader.unwrap_or(0)];
    let (facts, violations) = invariants::check(&runner.sim, leader).await;
    runner.report.facts = facts;
    runner.report.violations.extend(violations);
    let (found, violations) = liveness::check(&runner.sim, leader, ready).await;
    runner.report.liveness = found;
    runner.report.liveness_violations = violations;
    runner.stop().await;
    runner.sim.running.shutdown().await;
    let mut report = runner.report;
    if !report.violations.is_empty() || !report.liveness_violations.is_empty() {
        let kept: Vec<_> = runner.dirs.into_iter().map(TempDir::keep).collect();
        report.kept = kept.into_iter().next();
    }
    report.elapsed = started.elapsed();
    report
}

/// A daemon that exited on its own is a violation; it is started again so the run goes on.
pub(crate) fn keep_running(daemon: &mut Daemon, violations: &mut Vec<String>) {
    if let Some(status) = daemon.exited() {
        violations.push(format!("the daemon exited on its own: {status}"));
        daemon.start();
    }
}

impl Runner {
    fn keep_running(&mut self) {
        for daemon in &mut self.daemons {
            keep_running(daemon, &mut self.report.violations);
        }
    }

    /// The daemon process faults hit: the only one, or the leader (the one seen leading last
    /// while none does, as after a kill).
    fn target(&mut self) -> &mut Daemon {
        let n = self.leader.unwrap_or(0);
        &mut self.daemons[n]
    }

    /// Failover mode: who leads now. A change of leader is counted as a takeover; two daemons
    /// ready for longer than [`BOTH_READY_WITHIN`] is a violation.
    async fn observe_leadership(&mut self) {
        if self.daemons.len() == 1 {
            return;
        }
        let mut ready = ready_daemons(&self.daemons).await;
        if ready.len() > 1 {
            let settled = eventually(BOTH_READY_WITHIN, || async {
                ready_daemons(&self.daemons).await.len() <= 1
            })
            .await;
            if !settled {
                self.report.violations.push(format!(
                    "both daemons ready for over {BOTH_READY_WITHIN:?} (logs {:?})",
                    self.daemons
                        .iter()
                        .map(|d| d.log.clone())
                        .collect::<Vec<_>>()
                ));
            }
            ready = ready_daemons(&self.daemons).await;
        }
        if let [n] = ready.as_slice() {
            if self.leader.is_some_and(|last| last != *n) {
                *self.report.actions.entry("takeover_seen").or_default() += 1;
            }
            self.leader = Some(*n);
        }
    }

    async fn apply(&mut self, action: &Action) {
        match action {
            Action::Emit(n) | Action::Burst(n) => self.sim.emit(*n).await,
            Action::Drop(hub) => self.sim.drop_hub(*hub).await,
            Action::Outage(ms) => {
                self.sim.post("/outage", json!({"ms": ms})).await;
                self.outage_until = Instant::now() + Duration::from_millis(*ms);
            }
            Action::LoseCompletion {
                method,
                mode,
                count,
            } => {
                let loss = json!({"method": method, "mode": mode, "count": count});
                self.sim.faults(json!({"lose_completion": loss})).await;
            }
            Action::LoseJobEvents(n) => self.sim.faults(json!({"lose_job_events": n})).await,
            Action::DuplicateEvents(n) => self.sim.faults(json!({"duplicate_events": n})).await,
            Action::SuppressEvents(n) => self.sim.faults(json!({"suppress_events": n})).await,
            Action::DelayEvents(ms) => self.sim.faults(json!({"delay_events_ms": ms})).await,
            Action::FailPrepares(n) => self.sim.faults(json!({"fail_prepares": n})).await,
            Action::ConnectPush(form) => self.sim.faults(json!({"connect_push": form})).await,
            Action::Kill { down_ms } => {
                self.target().kill();
                tokio::time::sleep(Duration::from_millis(*down_ms)).await;
                self.target().start();
            }
            Action::Term => self.terminate_and_restart().await,
            Action::Pause(ms) => {
                self.target().signal(libc::SIGSTOP);
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                self.target().signal(libc::SIGCONT);
            }
            Action::PostgresRestart => self.postgres().restart(),
            Action::PostgresStop(ms) => {
                self.postgres().stop();
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                self.postgres().start_server();
            }
            Action::Entry { strategy, account } => {
                let signal = json!({"kind": "entry", "strategy_id": strategy, "account": account});
                self.toggle(signal).await;
            }
            Action::Exit { pick } => {
                let candidates = exit_candidates(&self.daemons[0], &self.churn).await;
                if !candidates.is_empty() {
                    let position = candidates[(*pick % candidates.len() as u64) as usize];
                    self.toggle(json!({"kind": "exit", "position_id": position}))
                        .await;
                }
            }
            Action::OpenPositions(n) => {
                let opened = self.sim.post("/positions/open", json!({"count": n})).await;
                let ids = opened["ids"].as_array().cloned().unwrap_or_default();
                self.churn.extend(ids.iter().filter_map(Value::as_i64));
            }
            Action::FailedExit => self.failed_exit().await,
            Action::ClosePosition { pick } => {
                if !self.churn.is_empty() {
                    let index = (*pick % self.churn.len() as u64) as usize;
                    let id = self.churn.swap_remove(index);
                    self.sim
                        .post("/positions/close", json!({"ids": [id]}))
                        .await;
                }
            }
        }
    }

    /// Opens a position server-side, waits for the daemon to know it, fails the next prepare
    /// and turns the position's exit signal On (left On), waiting for that prepare to fail.
    async fn failed_exit(&mut self) {
        let opened = self.sim.post("/positions/open", json!({"count": 1})).await;
        let Some(position) = opened["ids"][0].as_i64() else {
            return self.note("failed_exit_not_opened");
        };
        let known = eventually(SEEN_WITHIN, || async {
            let store = self.daemons[0].store().await;
            let known = store.position(position).await.ok().flatten().is_some();
            let _ = store.close().await;
            known
        })
        .await;
        if !known {
            return self.note("failed_exit_position_unseen");
        }
        let fired = |stats: Value| {
            stats["faults_injected"]["fail_prepare"]
                .as_u64()
                .unwrap_or(0)
        };
        let before = fired(self.sim.get("/stats").await);
        self.sim.faults(json!({"fail_prepares": 1})).await;
        self.toggle(json!({"kind": "exit", "position_id": position}))
            .await;
        let failed = eventually(Duration::from_secs(20), || async {
            fired(self.sim.get("/stats").await) > before
        })
        .await;
        if !failed {
            self.note("failed_exit_prepare_not_failed");
        }
    }

    /// The failover group's PostgreSQL (its faults are drawn in failover mode only).
    fn postgres(&self) -> &Cluster {
        self.cluster
            .as_ref()
            .expect("PostgreSQL faults are drawn in failover mode only")
    }

    fn note(&mut self, what: &'static str) {
        *self.report.actions.entry(what).or_default() += 1;
    }

    async fn toggle(&mut self, signal: Value) {
        if !toggle(&self.sim, signal).await {
            *self.report.actions.entry("signal_refused").or_default() += 1;
        }
    }

    /// SIGTERM, then a restart. The daemon stops with status 0; a SIGTERM that lands in the
    /// first milliseconds after exec, before the handler is installed, ends it by the default
    /// action (no cleanup, like a SIGKILL) — counted apart, since the run checks that nothing
    /// was lost either way.
    async fn terminate_and_restart(&mut self) {
        self.target().signal(libc::SIGTERM);
        let status = self.target().wait_exit(STOP_BUDGET).await;
        if status.signal() == Some(libc::SIGTERM) {
            *self
                .report
                .actions
                .entry("sigterm_before_handler")
                .or_default() += 1;
        } else if !status.success() {
            self.report
                .violations
                .push(format!("SIGTERM ended the daemon with {status}"));
        }
        self.target().start();
    }

    /// The quiet phase; returns how long a daemon took to be ready and caught up, and notes
    /// which leads.
    async fn quiesce(&mut self) -> Option<Duration> {
        tokio::time::sleep_until(self.outage_until.into()).await;
        self.keep_running();
        let ready = settle(&self.sim, &self.daemons, &mut self.report.violations).await;
        self.observe_leadership().await;
        ready
    }

    async fn stop(&mut self) {
        self.keep_running();
        for daemon in &mut self.daemons {
            stop(daemon, &mut self.report.violations).await;
        }
    }
}

/// The daemons answering `/readyz` 200 (failover mode: the leader, or none between terms).
async fn ready_daemons(daemons: &[Daemon]) -> Vec<usize> {
    let mut ready = Vec::new();
    for (n, daemon) in daemons.iter().enumerate() {
        if daemon.readyz().await == Some(200) {
            ready.push(n);
        }
    }
    ready
}

/// Whether the daemon has no active workflow, no attempt planned and no intent in flight.
async fn idle(daemon: &Daemon) -> bool {
    let store = daemon.store().await;
    let active = store.active_workflows().await.unwrap_or_default();
    let planned = store.planned_retries().await.unwrap_or_default();
    let intents = store.intents_in_flight().await.unwrap_or_default();
    let _ = store.close().await;
    active.is_empty() && planned.is_empty() && intents.is_empty()
}

/// Clears every fault, then waits for a daemon (the only one, or one of a failover pair, which
/// share their store) to be ready and caught up, and then for quiet: no new event, the cursor
/// at the latest, no active workflow, no attempt planned and no intent in flight, all holding
/// for [`QUIET`]. What does not happen within the bounds is a violation. Returns how long it
/// took to be ready and caught up (`None`: not within bounds).
pub(crate) async fn settle(
    sim: &Sim,
    daemons: &[Daemon],
    violations: &mut Vec<String>,
) -> Option<Duration> {
    sim.delete("/faults").await;
    let cleared = Instant::now();
    let daemon = &daemons[0];
    let caught_up = eventually(CATCH_UP, || async {
        !ready_daemons(daemons).await.is_empty()
            && daemon.cursor().await == Some(sim.latest_seq().await)
    })
    .await;
    let ready = caught_up.then(|| cleared.elapsed());
    if !caught_up {
        violations.push(format!(
            "not ready and caught up {CATCH_UP:?} after the faults were cleared: ready {:?}, cursor {:?}, latest {}",
            ready_daemons(daemons).await,
            daemon.cursor().await,
            sim.latest_seq().await
        ));
    }
    let deadline = Instant::now() + SETTLE;
    let mut still_since: Option<(Instant, i64)> = None;
    let quiet = loop {
        let latest = sim.latest_seq().await;
        let still = daemon.cursor().await == Some(latest) && idle(daemon).await;
        match still_since {
            Some((since, seen)) if still && seen == latest => {
                if since.elapsed() >= QUIET {
                    break true;
                }
            }
            _ => still_since = still.then(|| (Instant::now(), latest)),
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if quiet {
        return ready;
    }
    violations.push(format!(
        "no quiet {SETTLE:?} after catching up: cursor {:?}, latest {}",
        daemon.cursor().await,
        sim.latest_seq().await
    ));
    let store = daemon.store().await;
    for workflow in store.active_workflows().await.unwrap_or_default() {
        violations.push(format!(
            "workflow {} ({}) stuck in {} since {}: {:?}",
            workflow.id,
            workflow.kind.as_str(),
            workflow.state.as_str(),
            workflow.updated_at,
            workflow.reason
        ));
    }
    for intent in store.intents_in_flight().await.unwrap_or_default() {
        violations.push(format!("intent still in flight: {intent:?}"));
    }
    let _ = store.close().await;
    ready
}

/// SIGTERM: the daemon must stop cleanly, and its log must show no panic.
pub(crate) async fn stop(daemon: &mut Daemon, violations: &mut Vec<String>) {
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(STOP_BUDGET).await;
    if !status.success() {
        violations.push(format!(
            "SIGTERM at the end stopped the daemon with {status}"
        ));
    }
    if daemon.log_text().contains("panicked") {
        violations.push("the daemon log shows a panic".into());
    }
}

/// A signal Off then On: a new instance. False if the simulator refused (the position closed
/// meanwhile), which is part of the game.
pub(crate) async fn toggle(sim: &Sim, signal: Value) -> bool {
    for state in ["Off", "On"] {
        let mut body = signal.clone();
        body["state"] = json!(state);
        if sim.try_post("/signals", body).await.is_err() {
            return false;
        }
    }
    true
}

/// Open positions (by the daemon's state) that churn did not open: what exits may target.
pub(crate) async fn exit_candidates(daemon: &Daemon, churn: &[i64]) -> Vec<i64> {
    let store = daemon.store().await;
    let open = store.open_positions().await.unwrap_or_default();
    let _ = store.close().await;
    open.iter()
        .map(|p| p.position_id)
        .filter(|id| !churn.contains(id))
        .collect()
}
