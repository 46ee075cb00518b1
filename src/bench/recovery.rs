//! (4) Reconnect recovery: with open positions monitored, the simulator drops every connection
//! and refuses new ones for a while (`POST /outage`). Measured from the moment it accepts
//! connections again to the daemon being ready (all hubs up, pump resubscribed and caught up)
//! with every monitor streaming again (`monitors_streaming` back to the number of positions).

use std::time::{Duration, Instant};

use super::harness::{BenchSim, Scratch, progress, seconds};
use super::inproc::{self, InProcess};
use super::report::{Figure, Target};
use super::{BenchError, Sizes};
use crate::config::Settings;
use crate::ops::http::OpsState;

/// Longest the daemon may take to be ready and streaming, before and after the outage.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// The allowance beyond the configured backoff.
const ALLOWANCE: Duration = Duration::from_secs(1);

/// Runs the scenario `runs` times.
pub(super) async fn run(base: &Settings, runs: usize, sizes: &Sizes) -> Result<Figure, BenchError> {
    let mut samples = Vec::with_capacity(runs);
    let mut backoff_max = Duration::ZERO;
    let mut backoff_initial = Duration::ZERO;
    for run in 1..=runs {
        let sim = BenchSim::start(sizes.recovery_positions).await?;
        let scratch = Scratch::new()?;
        let settings = inproc::settings(base, &sim, &scratch);
        backoff_initial = settings.supervisor.backoff_initial;
        backoff_max = settings.supervisor.backoff_max;
        let daemon = InProcess::start(settings).await?;
        let measured = once(&sim, &daemon, sizes).await;
        let stopped = daemon.stop().await;
        sim.stop().await;
        let elapsed = measured?;
        stopped?;
        progress(format_args!(
            "4 recovery run {run}/{runs}: {:.3} s after the outage ended",
            seconds(elapsed)
        ));
        samples.push(seconds(elapsed));
    }
    Ok(Figure::new("4 recovery", "outage end to recovered", "s", samples)
        .target(Target::AtMost(seconds(backoff_max + ALLOWANCE)))
        .note(format!(
            "{} positions, outage {:?}, backoff {:?} to {:?} with jitter; target = backoff max + 1 s",
            sizes.recovery_positions, sizes.outage, backoff_initial, backoff_max
        )))
}

/// Ready, caught up to `latest`, and every one of `positions` monitors streaming.
fn recovered(ops: &OpsState, positions: usize, latest: i64) -> bool {
    let positions = i64::try_from(positions).unwrap_or(i64::MAX);
    let metrics = &ops.metrics;
    ops.health.ready()
        && metrics.cursor.get() >= latest
        && metrics.monitors_running.get() == positions
        && metrics.monitors_streaming.get() == positions
}

async fn once(sim: &BenchSim, daemon: &InProcess, sizes: &Sizes) -> Result<Duration, BenchError> {
    let positions = sizes.recovery_positions;
    let latest = sim.admin.latest_seq().await?;
    daemon
        .wait("ready with every monitor streaming", SETTLE_LIMIT, |ops| {
            recovered(ops, positions, latest)
        })
        .await?;
    let requested = Instant::now();
    sim.admin.outage(sizes.outage).await?;
    // The simulator refuses connections for `outage` from when it handles the request, a
    // little after `requested`: measuring from here overstates recovery by that little.
    let outage_end = requested + sizes.outage;
    daemon
        .wait("the outage to be noticed", SETTLE_LIMIT, |ops| {
            !recovered(ops, positions, latest)
        })
        .await?;
    let done = daemon
        .wait("recovery after the outage", SETTLE_LIMIT, |ops| {
            recovered(ops, positions, latest)
        })
        .await?;
    Ok(done.saturating_duration_since(outage_end))
}
