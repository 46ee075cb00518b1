//! `mesolive-supervisor demo`: the simulator and the daemon in one process, with a compact live
//! view every second — the README's first command, runnable with no account.
//!
//! The daemon runs in paper mode against a fresh database under `--data-dir` (recreated each
//! run: the simulator's world is new each time, so an old cursor would not match it). The
//! simulator generates signals, so entries, exits and adjustments happen on their own;
//! `--chaos` adds periodic connection drops, outages, lost answers and lost events to watch
//! recovery.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{AutomationMode, FirstRun, Settings};
use crate::daemon::{self, Daemon, DaemonError};
use crate::ops::http::OpsState;
use crate::ops::metrics::Metrics;
use crate::ops::notify::Notifier;
use crate::ops::signals::Termination;
use crate::store::Store;
use mesolive_api::Hub;
use mesolive_sim::{AdminClient, SimOptions, Simulator, Timing};

/// Demo knobs (the `demo` subcommand's flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Stop after this long (`None`: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Inject faults periodically.
    pub chaos: bool,
    /// Where the demo database goes (recreated each run).
    pub data_dir: PathBuf,
    /// Simulator seed.
    pub seed: u64,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The simulator could not start.
    #[error("simulator: {0}")]
    Sim(#[from] mesolive_sim::SimError),
    /// The demo directory cannot be prepared.
    #[error("{path}: {source}")]
    DataDir {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon stopped with an error.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
}

/// Runs simulator + daemon until Ctrl-C/SIGTERM or `duration`, printing the live view.
pub async fn run(base: Settings, options: DemoOptions) -> Result<(), DemoError> {
    signalr::tls::install_default_provider();
    let sim = Simulator::start(SimOptions {
        seed: options.seed,
        positions: 3,
        timing: Timing {
            signal_interval: Some(Duration::from_secs(2)),
            ..Timing::default()
        },
        ..SimOptions::default()
    })
    .await?;
    let settings = demo_settings(base, &sim.hub_base_url(), sim.token(), &options)?;
    let database = settings.database.path.clone();
    println!(
        "simulator: hubs {}  admin {}\ndaemon:    paper mode, database {}{}",
        sim.hub_base_url(),
        sim.admin_url(),
        database.display(),
        if options.chaos { ", chaos on" } else { "" }
    );
    let termination = Termination::install();
    let daemon = Daemon::build(settings, Notifier::disabled()).await?;
    let (ops, drain) = (daemon.ops(), daemon.drain());
    let signals = tokio::spawn(daemon::stop_on_signals(termination, drain.clone()));
    // Polled in place rather than spawned: the view and the daemon share this task.
    let daemon = daemon.run_until_stopped();
    tokio::pin!(daemon);
    let admin = AdminClient::new(sim.admin_url());
    let started = Instant::now();
    let mut view = View::new(ops.metrics.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut chaos_round = 0u64;
    let result = loop {
        tokio::select! {
            result = &mut daemon => break result,
            _ = tick.tick() => {}
        }
        if drain.is_intake_closed() {
            continue;
        }
        if options.duration.is_some_and(|d| started.elapsed() >= d) {
            drain.close_intake();
            continue;
        }
        let seconds = started.elapsed().as_secs();
        if options.chaos && seconds >= 4 && seconds.is_multiple_of(6) {
            chaos_round += 1;
            inject(&admin, chaos_round).await;
        }
        let faults = admin.faults_injected().await.unwrap_or(0);
        println!("{}", view.line(&ops, &database, faults).await);
    };
    signals.abort();
    let faults = admin.faults_injected().await.unwrap_or(0);
    sim.shutdown().await;
    println!("stopped: {}", view.line(&ops, &database, faults).await);
    result.map_err(DemoError::from)
}

fn demo_settings(
    mut settings: Settings,
    hub_base_url: &str,
    token: &str,
    options: &DemoOptions,
) -> Result<Settings, DemoError> {
    let database = options.data_dir.join("demo.db");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut path = database.clone().into_os_string();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(DemoError::DataDir {
                    path: PathBuf::from(path),
                    source,
                });
            }
        }
    }
    settings.hubs.base_url = hub_base_url.to_owned();
    settings.hubs.probe_provider = "Sim".into();
    settings.api_key = Some(crate::config::ApiKey::new(token));
    settings.database.path = database;
    settings.automation.mode = AutomationMode::Paper;
    settings.automation.adjustment_operation = "UpdateVars".into();
    settings.events.first_run = FirstRun::All;
    settings.ops.listen = (std::net::Ipv4Addr::LOCALHOST, 0).into();
    settings.supervisor.backoff_initial = Duration::from_millis(100);
    settings.supervisor.backoff_max = Duration::from_secs(2);
    settings.supervisor.restart_max = 1000;
    settings.automation.job_poll_after = Duration::from_secs(2);
    Ok(settings)
}

/// The live view: one line per second.
struct View {
    metrics: Arc<Metrics>,
    last_applied: u64,
    last_at: Instant,
}

impl View {
    fn new(metrics: Arc<Metrics>) -> Self {
        View {
            metrics,
            last_applied: 0,
            last_at: Instant::now(),
        }
    }

    async fn line(&mut self, ops: &OpsState, database: &std::path::Path, faults: u64) -> String {
        let m = &self.metrics;
        let applied = m.events_applied.get();
        let elapsed = self.last_at.elapsed().as_secs_f64().max(0.001);
        let rate = (applied.saturating_sub(self.last_applied)) as f64 / elapsed;
        self.last_applied = applied;
        self.last_at = Instant::now();
        let hubs: String = Hub::ALL
            .iter()
            .map(|hub| {
                if ops.health.hub_up(*hub) {
                    "●"
                } else {
                    "○"
                }
            })
            .collect();
        let (signals, done, active) = workflow_counts(database).await;
        format!(
            "hubs {hubs} {:<9} cursor {:>6}  {:>6.0} ev/s  monitors {:>3}  signals {:>3}  workflows done {:>3} active {:>2}  faults {:>3}",
            if ops.health.ready() {
                "ready"
            } else {
                "recovering"
            },
            m.cursor.get(),
            rate,
            m.monitors_running.get(),
            signals,
            done,
            active,
            faults,
        )
    }
}

/// `(signals seen, workflows done, workflows active)` from the demo database.
async fn workflow_counts(database: &std::path::Path) -> (i64, i64, i64) {
    let Ok(store) = Store::open_read_only(database).await else {
        return (0, 0, 0);
    };
    let counts = store.state_counts().await.unwrap_or_default();
    let signals = store.signals().await.map(|s| s.len() as i64).unwrap_or(0);
    let _ = store.close().await;
    let count = |states: &[&str]| -> i64 {
        counts
            .workflows
            .iter()
            .filter(|(state, _)| states.contains(&state.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    (
        signals,
        count(&["done"]),
        count(&["requested", "preparing", "prepared", "executing"]),
    )
}

/// One chaos action, rotating through the kinds of faults the daemon must survive.
async fn inject(admin: &AdminClient, round: u64) {
    let (path, body) = match round % 4 {
        1 => ("/connections/drop", json!({"hub": null})),
        2 => (
            "/faults",
            json!({"lose_completion": {"method": "ApplyPaperFills", "count": 1}}),
        ),
        3 => ("/outage", json!({"ms": 1500})),
        _ => (
            "/faults",
            json!({"lose_job_events": 1, "suppress_events": 3}),
        ),
    };
    if let Err(err) = admin.post(path, body).await {
        tracing::warn!(error = %err, "demo: admin call failed");
    }
}
