//! (2) Durable live ingest: events per second through the whole event pump — decode, dedupe,
//! effect and cursor committed in SQLite with group commit — while the daemon is live and a
//! burst arrives. Measured from the first event of the burst reaching the pump (the pump raises
//! its latest-seen EventSeqId) to the cursor committing the burst's last EventSeqId.
//!
//! (7) The same with `database.synchronous` full/normal × `events.batch_max` 1/16/256/512, to
//! show what the defaults buy.

use std::time::Duration;

use super::harness::{BenchSim, Scratch, progress, rate};
use super::inproc::{self, InProcess};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};
use crate::config::{Settings, SynchronousMode};

/// Longest the daemon may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(30);
/// Longest a burst may take to be committed.
const BURST_LIMIT: Duration = Duration::from_secs(300);
/// The absolute target for (2), in events per second.
const TARGET_EVENTS_PER_S: f64 = 20_000.0;
/// The target for (2) relative to the raw transport ceiling.
const TARGET_RATIO: f64 = 0.5;
/// The batch sizes of the sweep.
const SWEEP_BATCHES: [usize; 4] = [1, 16, 256, 512];

/// One configuration of the pump's store.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreConfig {
    pub(super) synchronous: SynchronousMode,
    pub(super) batch_max: usize,
}

impl StoreConfig {
    pub(super) fn label(self) -> String {
        let sync = match self.synchronous {
            SynchronousMode::Full => "FULL",
            SynchronousMode::Normal => "NORMAL",
        };
        format!("synchronous={sync} batch_max={}", self.batch_max)
    }
}

/// Scenario (2) `runs` times with the shipped defaults (FULL, batch_max 512), and its ratio
/// to the transport ceiling when (1) ran (`raw_median`).
pub(super) async fn run(
    base: &Settings,
    runs: usize,
    sizes: &Sizes,
    raw_median: Option<f64>,
) -> Result<Vec<Figure>, BenchError> {
    let config = StoreConfig {
        synchronous: SynchronousMode::Full,
        batch_max: 512,
    };
    let samples = repeat("2 ingest", base, config, sizes.ingest_burst, runs).await?;
    let figure = Figure::new("2 ingest", "events/s durable", "events/s", samples)
        .target(Target::AtLeast(TARGET_EVENTS_PER_S))
        .note(format!(
            "{}, burst of {}",
            config.label(),
            sizes.ingest_burst
        ));
    let ratio = raw_median.filter(|raw| *raw > 0.0).map(|raw| {
        Figure::new("2 ingest", "ratio to (1)", "x", vec![figure.median / raw])
            .target(Target::AtLeast(TARGET_RATIO))
            .note("median of (2) / median of (1)")
    });
    Ok(std::iter::once(figure).chain(ratio).collect())
}

/// Scenario (7): every synchronous mode × batch size, `runs` times each.
pub(super) async fn sweep(
    base: &Settings,
    runs: usize,
    sizes: &Sizes,
) -> Result<Vec<Figure>, BenchError> {
    let mut figures = Vec::new();
    for synchronous in [SynchronousMode::Full, SynchronousMode::Normal] {
        for batch_max in SWEEP_BATCHES {
            let config = StoreConfig {
                synchronous,
                batch_max,
            };
            let samples = repeat("7 sweep", base, config, sizes.sweep_burst, runs).await?;
            figures.push(
                Figure::new("7 sweep", &config.label(), "events/s", samples)
                    .note(format!("burst of {}", sizes.sweep_burst)),
            );
        }
    }
    Ok(figures)
}

pub(super) async fn repeat(
    scenario: &str,
    base: &Settings,
    config: StoreConfig,
    burst: u64,
    runs: usize,
) -> Result<Vec<f64>, BenchError> {
    let mut samples = Vec::with_capacity(runs);
    for run in 1..=runs {
        let per_second = once(base, config, burst).await?;
        progress(format_args!(
            "{scenario} {} run {run}/{runs}: {per_second:.0} events/s",
            config.label()
        ));
        samples.push(per_second);
    }
    Ok(samples)
}

async fn once(base: &Settings, config: StoreConfig, burst: u64) -> Result<f64, BenchError> {
    let sim = BenchSim::start(2).await?;
    let scratch = Scratch::new()?;
    let mut settings = inproc::settings(base, &sim, &scratch);
    settings.database.synchronous = config.synchronous;
    settings.events.batch_max = config.batch_max;
    let daemon = InProcess::start(settings.clone()).await?;
    let measured = measure(&sim, &daemon, burst).await;
    let stopped = daemon.stop().await;
    sim.stop().await;
    scratch.drop_schema(&settings).await;
    let per_second = measured?;
    stopped?;
    Ok(per_second)
}

async fn measure(sim: &BenchSim, daemon: &InProcess, burst: u64) -> Result<f64, BenchError> {
    daemon
        .wait("the daemon to be ready", READY_LIMIT, |ops| {
            ops.health.ready()
        })
        .await?;
    let metrics = &daemon.ops.metrics;
    let seen_before = metrics.latest_seq.get();
    let applied_before = metrics.events_applied.get();
    let last = sim.admin.emit(burst).await?;
    let started = daemon
        .wait("the burst to reach the pump", BURST_LIMIT, |ops| {
            ops.metrics.latest_seq.get() > seen_before
        })
        .await?;
    let committed = daemon
        .wait("the cursor to commit the burst", BURST_LIMIT, |ops| {
            ops.metrics.cursor.get() >= last
        })
        .await?;
    let applied = metrics.events_applied.get() - applied_before;
    Ok(rate(applied, committed - started))
}
