//! `mesolive-supervisor bench`: the end-to-end benchmarks of issue 8, against the built-in
//! simulator on loopback. Each scenario runs `runs` times; the report gives the median with the
//! min and max, because one run on a shared 2-core VM says little.
//!
//! ```text
//! mod.rs        options, sizes, the order of the scenarios
//! report.rs     figures, targets, median/min/max, the table and the JSON
//! harness.rs    a simulator + its admin client, polling with a deadline, scratch directories
//! inproc.rs     the daemon inside this process (OpsState is read directly)
//! child.rs      the daemon as a child process (honest RSS and CPU from /proc, /readyz, SIGTERM)
//! transport.rs  (1) raw callbacks/s of the SignalR client
//! ingest.rs     (2) durable live ingest, and (7) its synchronous × batch_max sweep
//! replay.rs     (3) start → caught up with a backlog
//! recovery.rs   (4) outage end → ready, caught up, every monitor streaming
//! monitoring.rs (5) RSS and CPU with many streaming positions
//! startup.rs    (6) start → READY, SIGTERM → exit
//! baseline.rs   (9) the Python baseline against the daemon: replay and live, daemon ÷ Python
//! peer.rs       the Python peer of (9): its virtualenv (pip) and its process
//! reaction.rs   (10) entry signal → first state-changing call, under a background load
//! ```

mod baseline;
mod child;
mod harness;
mod ingest;
mod inproc;
mod monitoring;
mod peer;
mod postgres;
mod reaction;
mod recovery;
mod replay;
pub mod report;
mod startup;
mod takeover;
mod transport;

use std::time::Duration;

use crate::config::Settings;
use crate::daemon::DaemonError;
use mesolive_api::client::HubError;
use mesolive_sim::{AdminError, SimError};
use signalr::SignalrError;

pub use report::Report;

/// What `bench` was asked for.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Runs per scenario (the median is reported).
    pub runs: usize,
    /// Small sizes and short windows: a smoke test, not figures.
    pub quick: bool,
    /// Only these scenarios (see [`SCENARIOS`] and [`ON_DEMAND`]); empty: all of [`SCENARIOS`].
    pub only: Vec<u8>,
    /// Background events/s of the reaction scenario instead of its size's (10,000; quick 1,000).
    pub background: Option<u64>,
}

/// The scenarios a bare `bench` runs, in order.
pub const SCENARIOS: &[u8] = &[1, 2, 3, 4, 5, 6, 7, 9, 10];

/// Scenarios run only when `--only` names them: 8 needs a PostgreSQL database.
pub const ON_DEMAND: &[u8] = &[8];

/// Why a benchmark could not run (a slow figure is a result, not an error).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The simulator could not start.
    #[error("simulator: {0}")]
    Sim(#[from] SimError),
    /// The simulator's admin API failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The benchmark's own SignalR client failed.
    #[error("signalr client: {0}")]
    Signalr(#[from] SignalrError),
    /// A hub call of the benchmark's own client failed.
    #[error("hub call: {0}")]
    Hub(#[from] HubError),
    /// The in-process daemon stopped with an error.
    #[error("daemon: {0}")]
    Daemon(#[from] DaemonError),
    /// A condition was not reached in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it was given.
        after: Duration,
    },
    /// A file, a directory or the child process failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The child daemon misbehaved (exited early, failed to stop).
    #[error("child daemon: {0}")]
    Child(String),
    /// The Python baseline could not be set up or run (python3, venv or pip missing, the peer
    /// failing).
    #[error("python baseline: {0}")]
    Peer(String),
    /// `--only` named a scenario this build does not have.
    #[error("no scenario {0} (scenarios: {SCENARIOS:?}, on demand: {ON_DEMAND:?})")]
    Unknown(u8),
}

/// Sizes of each scenario; `--quick` shrinks all of them.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// Events of one transport burst.
    transport_burst: u64,
    /// Events of one live-ingest burst.
    ingest_burst: u64,
    /// Events of one burst of the synchronous × batch_max sweep.
    sweep_burst: u64,
    /// Events in the replay backlog.
    replay_backlog: u64,
    /// Open positions for the reconnect scenario.
    recovery_positions: usize,
    /// How long the simulator refuses connections in the reconnect scenario.
    outage: Duration,
    /// Open positions for the monitoring scenario.
    monitoring_positions: usize,
    /// Steady-state window over which RSS and CPU are read.
    monitoring_window: Duration,
    /// Open positions for the startup scenario.
    startup_positions: usize,
    /// Events of the backend comparison's ingest burst and replay backlog.
    backend_events: u64,
    /// Entry signals timed in the reaction scenario.
    reaction_signals: usize,
    /// Background events per second during the reaction scenario.
    reaction_background: u64,
}

impl Sizes {
    fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                transport_burst: 2_000,
                ingest_burst: 2_000,
                sweep_burst: 300,
                replay_backlog: 5_000,
                recovery_positions: 20,
                outage: Duration::from_millis(500),
                monitoring_positions: 50,
                monitoring_window: Duration::from_secs(2),
                startup_positions: 20,
                backend_events: 2_000,
                reaction_signals: 10,
                // A smoke test checks that the scenario runs, not how fast: a debug build on a
                // slow core cannot keep up with the full 10,000 events/s.
                reaction_background: 1_000,
            }
        } else {
            Sizes {
                transport_burst: 50_000,
                ingest_burst: 50_000,
                sweep_burst: 20_000,
                replay_backlog: 100_000,
                recovery_positions: 200,
                outage: Duration::from_secs(2),
                monitoring_positions: 1_000,
                monitoring_window: Duration::from_secs(10),
                startup_positions: 200,
                backend_events: 100_000,
                reaction_signals: 200,
                reaction_background: 10_000,
            }
        }
    }
}

/// Runs every scenario (or those of `options.only`) `options.runs` times, in the issue's
/// order, and reports the figures. A scenario that fails is listed in [`Report::failures`]
/// and the others still run. `base` supplies every setting the scenarios do not set
/// themselves; progress goes to stderr.
pub async fn run(base: Settings, options: BenchOptions) -> Result<Report, BenchError> {
    signalr::tls::install_default_provider();
    let mut sizes = Sizes::new(options.quick);
    if let Some(background) = options.background {
        sizes.reaction_background = background;
    }
    let runs = options.runs.max(1);
    let mut report = Report::new(runs, options.quick);
    if let Some(unknown) = options
        .only
        .iter()
        .find(|s| !SCENARIOS.contains(s) && !ON_DEMAND.contains(s))
    {
        return Err(BenchError::Unknown(*unknown));
    }
    let wanted = |scenario: u8| options.only.is_empty() || options.only.contains(&scenario);
    let mut raw_median = None;
    if wanted(1) {
        let raw = transport::run(runs, &sizes).await;
        raw_median = raw.as_ref().ok().map(|raw| raw.median);
        report.record(1, raw.map(|raw| [raw]));
    }
    if wanted(2) {
        report.record(2, ingest::run(&base, runs, &sizes, raw_median).await);
    }
    if wanted(3) {
        report.record(3, replay::run(&base, runs, &sizes).await);
    }
    if wanted(4) {
        report.record(4, recovery::run(&base, runs, &sizes).await.map(|f| [f]));
    }
    if wanted(5) {
        report.record(5, monitoring::run(runs, &sizes).await);
    }
    if wanted(6) {
        report.record(6, startup::run(runs, &sizes).await);
    }
    if wanted(7) {
        report.record(7, ingest::sweep(&base, runs, &sizes).await);
    }
    // Only on demand: it needs a PostgreSQL database.
    if options.only.contains(&8) {
        report.record(8, postgres::run(&base, runs, &sizes).await);
    }
    if wanted(9) {
        report.record(9, baseline::run(&base, runs, &sizes).await);
    }
    if wanted(10) {
        report.record(10, reaction::run(runs, &sizes).await);
    }
    Ok(report)
}
